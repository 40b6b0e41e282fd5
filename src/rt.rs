//! One small tokio runtime for the network clients (MongoDB, S3) that the otherwise
//! synchronous library calls into. [`block_on`] runs a future there and waits on a plain
//! channel, so it works from any thread: a CLI, a training worker, a `spawn_blocking` task,
//! even an async task (which it blocks, as any synchronous I/O would). The runtime lives for
//! the whole process: dropping a runtime inside another one panics.

use std::future::Future;
use std::sync::OnceLock;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("categorizer-io")
            .enable_all()
            .build()
            .expect("the I/O runtime starts")
    })
}

/// Runs `fut` on the I/O runtime and returns its output.
pub fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .expect("an I/O task panicked; its error is in the log")
}

/// Starts `fut` on the I/O runtime and returns at once.
pub fn spawn<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    runtime().spawn(fut);
}
