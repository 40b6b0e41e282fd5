//! S3 plumbing shared by the model store and the data reader: a client with the settings'
//! endpoint, region, path style and timeouts, and a listing that follows continuation tokens.
//! Credentials come from the standard AWS chain, never from the settings files.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::operation::list_objects_v2::builders::ListObjectsV2FluentBuilder;

use crate::config::S3Settings;

/// A client with the endpoint, region, path style and timeouts of `s` (no request is made):
/// a connect timeout, and either a timeout on each whole call (`whole_calls`: the store's small
/// objects) or on each read (a data object's download, which may take as long as it keeps
/// moving).
pub fn client(s: &S3Settings, whole_calls: bool) -> Client {
    let s = s.clone();
    crate::rt::block_on(async move {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(s.connect_timeout_ms));
        let timeouts = if whole_calls {
            timeouts.operation_timeout(Duration::from_millis(s.timeout_ms))
        } else {
            timeouts.read_timeout(Duration::from_millis(s.timeout_ms))
        };
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(s.region.clone()))
            .timeout_config(timeouts.build())
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
            .load()
            .await;
        let mut b = aws_sdk_s3::config::Builder::from(&shared).force_path_style(s.force_path_style);
        if let Some(endpoint) = s.endpoint.as_deref().filter(|e| !e.is_empty()) {
            b = b.endpoint_url(endpoint);
        }
        Client::from_conf(b.build())
    })
}

/// Every object under `prefix` with its size, following continuation tokens; `send` runs each
/// page's request (bounded as its caller bounds a call).
pub fn list_objects<E>(
    client: &Client,
    bucket: &str,
    prefix: &str,
    mut send: impl FnMut(ListObjectsV2FluentBuilder) -> std::result::Result<ListObjectsV2Output, E>,
) -> std::result::Result<Vec<(String, u64)>, E> {
    let mut objects = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let req = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token.take());
        let page = send(req)?;
        objects.extend(page.contents().iter().filter_map(|o| {
            let key = o.key()?;
            Some((key.to_string(), o.size().unwrap_or(0).max(0) as u64))
        }));
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => return Ok(objects),
        }
    }
}
