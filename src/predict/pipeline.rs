//! The threads of bulk scoring: one cuts the input into pieces, `workers` parse and score
//! them (each with its own ONNX Runtime session), and the calling thread writes them in input
//! order. At most `workers + 1` pieces are in flight between the reader and the writer, so
//! memory does not grow with the input; the first error, in input order, stops the run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::PredictSummary;
use super::piece::{Piecework, Scored};
use super::write::{Sink, Target};
use crate::error::{Error, Result};
use crate::inference::{OnnxModel, Predictions};
use crate::ingest::chunk::{Body, ChunkReader};
use crate::train::progress::Step;

/// Runs the reader, the workers and the writer over `reader`'s pieces of `chunk_rows` rows:
/// the open sink (None when the input had no rows), the summary's counts and phases filled.
pub(super) fn score_in_order(
    reader: ChunkReader,
    (work, sessions): (&Piecework, Vec<OnnxModel>),
    chunk_rows: usize,
    output: (&PathBuf, &Target),
    summary: &mut PredictSummary,
    bar: &Step,
) -> Result<Option<Sink>> {
    let workers = sessions.len();
    // Bounded: at most `in_flight` pieces between the reader and the writer.
    let in_flight = workers + 1;
    let (job_tx, job_rx) = sync_channel::<Job>(workers);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = sync_channel::<(usize, Result<Scored>)>(workers);
    let (ticket_tx, ticket_rx) = sync_channel::<()>(in_flight);
    for _ in 0..in_flight {
        ticket_tx
            .send(())
            .expect("the ticket channel holds in_flight tickets");
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let stop = &stop;
        let reading = scope.spawn(move || read_pieces(reader, chunk_rows, job_tx, ticket_rx, stop));
        for session in sessions {
            let (jobs, done) = (job_rx.clone(), done_tx.clone());
            scope.spawn(move || score_pieces(work, session, jobs, done));
        }
        drop((job_rx, done_tx));
        let written = write_in_order(done_rx, ticket_tx, output, summary, bar);
        if written.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        summary.phases.read = reading
            .join()
            .map_err(|_| Error::Model("the input reader stopped".into()))?
            .as_secs_f64();
        written
    })
}

/// A piece on its way from the reader to a worker.
struct Job {
    seq: usize,
    /// Rows before it in the input.
    offset: usize,
    /// The reader's position after it (progress).
    position: u64,
    body: Result<Body>,
}

/// The reader thread: cuts pieces while there are tickets (pieces in flight), and returns the
/// time it spent reading. An error goes to the workers as the piece it stopped at.
fn read_pieces(
    mut reader: ChunkReader,
    rows: usize,
    jobs: SyncSender<Job>,
    tickets: Receiver<()>,
    stop: &AtomicBool,
) -> Duration {
    let mut busy = Duration::ZERO;
    let mut offset = 0;
    for seq in 0.. {
        if tickets.recv().is_err() || stop.load(Ordering::Relaxed) {
            break;
        }
        let t = Instant::now();
        let next = reader.next(rows);
        busy += t.elapsed();
        let (body, last) = match next {
            Ok(Some(body)) => (Ok(body), false),
            Ok(None) => break,
            Err(e) => (Err(e), true),
        };
        let n = body.as_ref().map_or(0, Body::rows);
        let job = Job {
            seq,
            offset,
            position: reader.position(),
            body,
        };
        if jobs.send(job).is_err() || last {
            break;
        }
        offset += n;
    }
    busy
}

/// A worker thread: scores pieces with its own session until the reader is done.
fn score_pieces(
    work: &Piecework,
    mut session: OnnxModel,
    jobs: Arc<Mutex<Receiver<Job>>>,
    done: SyncSender<(usize, Result<Scored>)>,
) {
    let mut pred = Predictions {
        want_preprocessed: work.explain,
        ..Default::default()
    };
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => break,
        };
        let Ok(Job {
            seq,
            offset,
            position,
            body,
        }) = job
        else {
            break;
        };
        // A panic in a parser (hostile bytes) is this piece's error, not the process's.
        let scored = body.and_then(|body| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                work.score(&body, offset, position, &mut session, &mut pred)
            }))
            .unwrap_or_else(|_| {
                Err(Error::Model(format!(
                    "scoring rows {}-{} failed unexpectedly",
                    offset + 1,
                    offset + body.rows()
                )))
            })
        });
        if done.send((seq, scored)).is_err() {
            break;
        }
    }
}

/// The calling thread: writes the scored pieces in input order (the first error, in input
/// order, stops the run), giving a ticket back for each.
fn write_in_order(
    done: Receiver<(usize, Result<Scored>)>,
    tickets: SyncSender<()>,
    (path, target): (&PathBuf, &Target),
    summary: &mut PredictSummary,
    bar: &Step,
) -> Result<Option<Sink>> {
    let mut pending: BTreeMap<usize, Result<Scored>> = BTreeMap::new();
    let mut next = 0;
    let mut sink: Option<Sink> = None;
    for (seq, scored) in done.iter() {
        pending.insert(seq, scored);
        while let Some(scored) = pending.remove(&next) {
            let s = scored?;
            let t = Instant::now();
            let out = match sink.as_mut() {
                Some(out) => out,
                None => sink.insert(Sink::create(path, target, &s.out)?),
            };
            out.write(s.out)?;
            summary.phases.add(&s.phases);
            summary.phases.write += t.elapsed().as_secs_f64();
            summary.rows += s.rows;
            summary.predicted += s.predicted;
            summary.set_aside += s.set_aside;
            summary.malformed += s.malformed;
            match summary.profile.as_mut() {
                Some(p) => p.merge(&s.profile),
                None => summary.profile = Some(s.profile),
            }
            bar.set_position(s.position)?;
            next += 1;
            let _ = tickets.send(());
        }
    }
    if !pending.is_empty() {
        return Err(Error::Model(format!(
            "a scoring worker stopped before piece {next}"
        )));
    }
    Ok(sink)
}
