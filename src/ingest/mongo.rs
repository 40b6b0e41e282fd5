//! MongoDB as a data source (`mongodb://HOST:PORT/DB?collection=NAME`) and as an import
//! target (`categorizer import`).
//!
//! Reading streams the collection through a cursor in batches, projecting only the schema's
//! columns: a task on the I/O runtime fetches documents while the calling thread converts
//! them into column buffers, reports progress, and can stop the read. A document whose field
//! is missing (or null) or has the wrong BSON type (text that is not a number in a numeric
//! column, say) gets a missing value there, and the field is counted: the report says, per
//! field, how many documents were missing it or had it mistyped, with the first document
//! numbers. From there the rows follow the file source's rules: feature engineering imputes
//! a missing Income and sets aside rows missing anything else, naming the reason.

use std::collections::BTreeMap;
use std::time::Duration;

use mongodb::bson::{Bson, Document, RawBsonRef, RawDocumentBuf, doc};
use mongodb::options::{ClientOptions, FindOptions, IndexOptions, InsertManyOptions};
use mongodb::{Client, IndexModel};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schema::{RawSchema, RawType};

/// Documents per cursor batch and per insert.
const BATCH: u32 = 5000;

/// A MongoDB collection, parsed from `mongodb://[user:pass@]host:port/DB?collection=NAME[&…]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MongoSource {
    /// The connection string without the `collection` parameter.
    pub uri: String,
    pub db: String,
    pub collection: String,
    /// `host:port[,host:port]`, for messages (never the password).
    pub hosts: String,
}

impl MongoSource {
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |why: &str| Error::config("data.source", format!("{}: {why}", redact(spec)));
        if spec.starts_with("mongodb+srv://") {
            return Err(bad(
                "mongodb+srv:// (DNS seed lists) is not built in; give mongodb://HOST:PORT",
            ));
        }
        let rest = spec
            .strip_prefix("mongodb://")
            .ok_or_else(|| bad("not a mongodb:// URI"))?;
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
        let hosts = authority.rsplit('@').next().unwrap_or("").to_string();
        if hosts.is_empty() {
            return Err(bad("no host"));
        }
        let db = path.trim_matches('/').to_string();
        if db.is_empty() {
            return Err(bad("no database: mongodb://HOST:PORT/DB?collection=NAME"));
        }
        let mut collection = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("collection", name)) if !name.is_empty() => {
                    collection = Some(name.to_string())
                }
                _ => kept.push(pair),
            }
        }
        let collection = collection.ok_or_else(|| bad("no collection: add ?collection=NAME"))?;
        let mut uri = format!("mongodb://{before_query}");
        if !kept.is_empty() {
            uri.push('?');
            uri.push_str(&kept.join("&"));
        }
        Ok(Self {
            uri,
            db,
            collection,
            hosts,
        })
    }

    /// The source as shown in messages and reports: no credentials.
    pub fn name(&self) -> String {
        format!(
            "mongodb://{}/{}?collection={}",
            self.hosts, self.db, self.collection
        )
    }

    fn fail(&self, what: &str, e: mongodb::error::Error) -> Error {
        Error::Source(format!("{} ({what}): {e}", self.name()))
    }

    /// A client that gives up on an unreachable server within seconds, after checking the
    /// server answers.
    async fn connect(&self) -> Result<Client> {
        let mut options = ClientOptions::parse(&self.uri)
            .await
            .map_err(|e| self.fail("connection string", e))?;
        // The project's timeouts cap any a connection string sets: a source must not hold
        // the one training thread for days.
        options.connect_timeout = Some(
            options
                .connect_timeout
                .map_or(CONNECT_TIMEOUT, |t| t.min(CONNECT_TIMEOUT)),
        );
        options.server_selection_timeout = Some(
            options
                .server_selection_timeout
                .map_or(SELECTION_TIMEOUT, |t| t.min(SELECTION_TIMEOUT)),
        );
        options.app_name = Some("customer-categorizer".into());
        let client = Client::with_options(options).map_err(|e| self.fail("client", e))?;
        client
            .database(&self.db)
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(|e| Error::Source(format!("cannot reach MongoDB at {}: {e}", self.hosts)))?;
        Ok(client)
    }
}

/// `mongodb://user:secret@host` → `mongodb://user:***@host`.
pub fn redact(spec: &str) -> String {
    match (spec.find("://"), spec.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &spec[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &spec[..s + 3], &spec[at..]),
                None => spec.to_string(),
            }
        }
        _ => spec.to_string(),
    }
}

/// Per field: documents that lacked it and documents whose value had the wrong type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldIssues {
    pub missing: usize,
    pub mistyped: usize,
    /// The first few document numbers (1-based, in read order) with a problem.
    pub documents: Vec<usize>,
}

pub type SourceReport = BTreeMap<String, FieldIssues>;

/// Report lines: `Income: 3 missing, 1 mistyped (documents 4, 9, 12)`.
pub fn report_lines(report: &SourceReport) -> Vec<String> {
    report
        .iter()
        .map(|(field, i)| {
            let docs: Vec<String> = i.documents.iter().map(|d| d.to_string()).collect();
            format!(
                "{field}: {} missing, {} mistyped (documents {})",
                i.missing,
                i.mistyped,
                docs.join(", ")
            )
        })
        .collect()
}

enum Buffer {
    Numbers(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
}

/// What one field's value became.
enum Cell {
    Value,
    Missing,
    Mistyped,
}

fn push(
    buffer: &mut Buffer,
    kind: RawType,
    format: Option<&str>,
    value: Option<RawBsonRef<'_>>,
) -> Cell {
    match buffer {
        Buffer::Numbers(v) => {
            let (x, cell) = match value {
                None | Some(RawBsonRef::Null) | Some(RawBsonRef::Undefined) => {
                    (None, Cell::Missing)
                }
                Some(RawBsonRef::Double(x)) if x.is_nan() => (None, Cell::Missing),
                Some(RawBsonRef::Double(x)) => (Some(x), Cell::Value),
                Some(RawBsonRef::Int32(x)) => (Some(x as f64), Cell::Value),
                Some(RawBsonRef::Int64(x)) => (Some(x as f64), Cell::Value),
                Some(RawBsonRef::Boolean(b)) => (Some(b as u8 as f64), Cell::Value),
                // Text that holds a number is accepted, as a CSV cell is.
                Some(RawBsonRef::String(s)) if s.trim().is_empty() => (None, Cell::Missing),
                Some(RawBsonRef::String(s)) => match s.trim().parse::<f64>() {
                    Ok(x) if x.is_finite() => (Some(x), Cell::Value),
                    _ => (None, Cell::Mistyped),
                },
                Some(_) => (None, Cell::Mistyped),
            };
            v.push(x);
            cell
        }
        Buffer::Text(v) => {
            let (s, cell) = match value {
                None | Some(RawBsonRef::Null) | Some(RawBsonRef::Undefined) => {
                    (None, Cell::Missing)
                }
                Some(RawBsonRef::String(s)) if s.trim().is_empty() => (None, Cell::Missing),
                Some(RawBsonRef::String(s)) => (Some(s.to_string()), Cell::Value),
                Some(RawBsonRef::Int32(x)) if kind == RawType::Category => {
                    (Some(x.to_string()), Cell::Value)
                }
                Some(RawBsonRef::Int64(x)) if kind == RawType::Category => {
                    (Some(x.to_string()), Cell::Value)
                }
                // A BSON date in a date column is written in the schema's text format.
                Some(RawBsonRef::DateTime(t)) if kind == RawType::Date => {
                    let days = t.timestamp_millis().div_euclid(86_400_000);
                    let (d, m, y) = crate::dates::civil_from_days(days);
                    let text = match format {
                        Some("%Y-%m-%d") => format!("{y:04}-{m:02}-{d:02}"),
                        _ => format!("{d:02}-{m:02}-{y:04}"),
                    };
                    (Some(text), Cell::Value)
                }
                Some(_) => (None, Cell::Mistyped),
            };
            v.push(s);
            cell
        }
    }
}

/// Longest wait for a TCP connection, and for a server to answer at all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const SELECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a read that waits on the server checks whether it was cancelled.
const WAIT_TICK: Duration = Duration::from_millis(200);
/// Longest silence of the server in the middle of a read.
const STALL_LIMIT: Duration = Duration::from_secs(60);

/// Reads the collection into a frame of the 29 schema columns (the types the file readers
/// give), with the per-field report. `progress(done, estimated_total)` is called after each
/// batch; its error stops the read.
pub fn load(
    src: &MongoSource,
    progress: &mut dyn FnMut(u64, u64) -> Result<()>,
) -> Result<(DataFrame, SourceReport)> {
    let schema = RawSchema::get();
    let (rx, total_rx) = spawn_fetch(src);
    let mut buffers: Vec<Buffer> = schema
        .columns
        .iter()
        .map(|c| match c.kind {
            RawType::Integer | RawType::Number => Buffer::Numbers(Vec::new()),
            RawType::Category | RawType::Date => Buffer::Text(Vec::new()),
        })
        .collect();
    let mut report = SourceReport::new();
    let mut done = 0usize;
    let mut total = 0u64;
    let mut waited = Duration::ZERO;
    loop {
        // While the server is silent, `progress` is still called every WAIT_TICK, so a
        // cancelled job stops within it, and a server that sends nothing for STALL_LIMIT is
        // an error rather than a training thread held for as long as its socket stays open.
        let batch = match rx.recv_timeout(WAIT_TICK) {
            Ok(batch) => {
                waited = Duration::ZERO;
                batch?
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                progress(done as u64, total.max(done as u64))?;
                waited += WAIT_TICK;
                if waited >= STALL_LIMIT {
                    return Err(Error::Source(format!(
                        "{}: the server sent nothing for {} s",
                        src.name(),
                        STALL_LIMIT.as_secs()
                    )));
                }
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if total == 0 {
            total = total_rx.try_recv().unwrap_or(0);
        }
        add_batch(&batch, &mut buffers, &mut report, &mut done);
        progress(done as u64, total.max(done as u64))?;
    }
    if done == 0 {
        return Err(Error::NoRows {
            source_name: src.name(),
        });
    }
    let columns: Vec<Column> = schema
        .columns
        .iter()
        .zip(buffers)
        .map(|(col, b)| match b {
            Buffer::Numbers(v) => Column::new(col.name.as_str().into(), v),
            Buffer::Text(v) => Column::new(col.name.as_str().into(), v),
        })
        .collect();
    Ok((DataFrame::new_infer_height(columns)?, report))
}

/// Documents in batches, or the read's error.
type Batches = std::sync::mpsc::Receiver<Result<Vec<RawDocumentBuf>>>;

/// Starts the task on the I/O runtime that fetches the collection: its batches of documents,
/// then the end of the channel once the client has shut down; and the estimated count of
/// documents, sent first.
fn spawn_fetch(src: &MongoSource) -> (Batches, std::sync::mpsc::Receiver<u64>) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<RawDocumentBuf>>>(4);
    let (total_tx, total_rx) = std::sync::mpsc::sync_channel::<u64>(1);
    let task_src = src.clone();
    crate::rt::spawn(async move {
        let src = task_src;
        match fetch(&src, &tx, &total_tx).await {
            Ok(client) => client.shutdown().await,
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
    });
    (rx, total_rx)
}

/// Streams the collection's documents, the schema's columns projected, into `tx` in batches
/// of [`BATCH`], after sending the estimated count into `total_tx`. Returns the client, to
/// shut down.
async fn fetch(
    src: &MongoSource,
    tx: &std::sync::mpsc::SyncSender<Result<Vec<RawDocumentBuf>>>,
    total_tx: &std::sync::mpsc::SyncSender<u64>,
) -> Result<Client> {
    let client = src.connect().await?;
    let coll = client
        .database(&src.db)
        .collection::<RawDocumentBuf>(&src.collection);
    let total = coll.estimated_document_count().await.unwrap_or(0);
    let _ = total_tx.send(total);
    let mut projection = doc! { "_id": 0 };
    for name in RawSchema::get().names() {
        projection.insert(name, 1);
    }
    let options = FindOptions::builder()
        .projection(projection)
        .batch_size(BATCH)
        .build();
    let mut cursor = coll
        .find(doc! {})
        .with_options(options)
        .await
        .map_err(|e| src.fail("find", e))?;
    let mut batch = Vec::with_capacity(BATCH as usize);
    while cursor.advance().await.map_err(|e| src.fail("cursor", e))? {
        batch.push(
            cursor
                .deserialize_current()
                .map_err(|e| src.fail("document", e))?,
        );
        if batch.len() == BATCH as usize {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH as usize));
            if tx.send(Ok(full)).is_err() {
                return Ok(client); // the reader stopped
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(Ok(batch));
    }
    Ok(client)
}

/// Converts a batch of documents into the column buffers (`done` counts the documents),
/// counting each field's missing and mistyped values with the first document numbers.
fn add_batch(
    batch: &[RawDocumentBuf],
    buffers: &mut [Buffer],
    report: &mut SourceReport,
    done: &mut usize,
) {
    let schema = RawSchema::get();
    for doc in batch {
        *done += 1;
        for (col, buffer) in schema.columns.iter().zip(buffers.iter_mut()) {
            let value = doc.get(&col.name).ok().flatten();
            let cell = push(buffer, col.kind, col.format.as_deref(), value);
            let issue = match cell {
                Cell::Value => continue,
                Cell::Missing => {
                    let i = report.entry(col.name.clone()).or_default();
                    i.missing += 1;
                    i
                }
                Cell::Mistyped => {
                    let i = report.entry(col.name.clone()).or_default();
                    i.mistyped += 1;
                    i
                }
            };
            if issue.documents.len() < 5 {
                issue.documents.push(*done);
            }
        }
    }
}

/// What `categorizer import` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportSummary {
    pub read: usize,
    pub inserted: usize,
    /// Records whose ID the collection already had (left as they are).
    pub already_present: usize,
    /// Records without an ID (not imported).
    pub without_id: usize,
}

/// A unique index on `ID` (created if missing): one document per customer.
async fn unique_id_index(target: &MongoSource, coll: &mongodb::Collection<Document>) -> Result<()> {
    let index = IndexModel::builder()
        .keys(doc! { "ID": 1 })
        .options(
            IndexOptions::builder()
                .unique(true)
                .name("ID_unique".to_string())
                .build(),
        )
        .build();
    coll.create_index(index)
        .await
        .map_err(|e| target.fail("create the ID index", e))?;
    Ok(())
}

/// Writes scored customers into a collection, one document per `ID`: each run replaces a
/// customer's document (an upsert by `ID`), so scoring the same file twice leaves one
/// document per customer, with the newest scores.
pub struct ScoreWriter {
    target: MongoSource,
    client: Client,
}

impl ScoreWriter {
    /// Connects, and makes sure the collection has the unique `ID` index.
    pub fn connect(target: &MongoSource) -> Result<Self> {
        let target = target.clone();
        crate::rt::block_on(async move {
            let client = target.connect().await?;
            let coll = client
                .database(&target.db)
                .collection::<Document>(&target.collection);
            unique_id_index(&target, &coll).await?;
            Ok(ScoreWriter { target, client })
        })
    }

    /// Upserts `docs` (each with an `ID`) in batches: one `update` command per batch, each
    /// statement replacing the document whose `ID` matches, or inserting it.
    pub fn write(&mut self, docs: Vec<Document>) -> Result<()> {
        let (target, client) = (self.target.clone(), self.client.clone());
        crate::rt::block_on(async move {
            let db = client.database(&target.db);
            for chunk in docs.chunks(BATCH as usize) {
                let updates: Vec<Document> = chunk
                    .iter()
                    .map(|d| {
                        let id = d.get("ID").cloned().unwrap_or(Bson::Null);
                        doc! { "q": { "ID": id }, "u": d.clone(), "upsert": true }
                    })
                    .collect();
                let reply = db
                    .run_command(doc! {
                        "update": &target.collection,
                        "updates": updates,
                        "ordered": false,
                    })
                    .await
                    .map_err(|e| target.fail("upsert", e))?;
                if let Ok(errors) = reply.get_array("writeErrors") {
                    if let Some(first) = errors.first() {
                        return Err(Error::Source(format!(
                            "{} (upsert): {} of {} documents were refused, the first: {first}",
                            target.name(),
                            errors.len(),
                            chunk.len()
                        )));
                    }
                }
            }
            Ok(())
        })
    }

    pub fn finish(self) -> Result<()> {
        crate::rt::block_on(async move { self.client.shutdown().await });
        Ok(())
    }
}

/// Loads raw records into the collection, idempotently: records whose `ID` the collection
/// already holds are skipped, so importing the same file twice stores each record once. A
/// unique index on `ID` is created if missing.
pub fn import(df: &DataFrame, target: &MongoSource) -> Result<ImportSummary> {
    let (docs, without_id) = documents(df)?;
    let read = df.height();
    let target = target.clone();
    crate::rt::block_on(async move {
        let client = target.connect().await?;
        let coll = client
            .database(&target.db)
            .collection::<Document>(&target.collection);
        unique_id_index(&target, &coll).await?;
        let existing = existing_ids(&target, &coll).await?;
        let mut seen = std::collections::HashSet::new();
        let fresh: Vec<Document> = docs
            .into_iter()
            .filter(|(id, _)| !existing.contains(id) && seen.insert(*id))
            .map(|(_, d)| d)
            .collect();
        let inserted = fresh.len();
        for chunk in fresh.chunks(BATCH as usize) {
            coll.insert_many(chunk)
                .with_options(InsertManyOptions::builder().ordered(false).build())
                .await
                .map_err(|e| target.fail("insert", e))?;
        }
        client.shutdown().await;
        Ok(ImportSummary {
            read,
            inserted,
            already_present: read - without_id - inserted,
            without_id,
        })
    })
}

/// The records as documents of the schema's columns, each with its `ID`; and how many
/// records had no `ID` (left out).
fn documents(df: &DataFrame) -> Result<(Vec<(i64, Document)>, usize)> {
    let schema = RawSchema::get();
    let mut docs: Vec<(i64, Document)> = Vec::with_capacity(df.height());
    let mut without_id = 0;
    let columns: Vec<&Column> = schema
        .columns
        .iter()
        .map(|c| df.column(&c.name))
        .collect::<std::result::Result<_, _>>()?;
    let floats: Vec<Option<Float64Chunked>> = schema
        .columns
        .iter()
        .zip(&columns)
        .map(|(c, col)| match c.kind {
            RawType::Integer | RawType::Number => col
                .cast(&DataType::Float64)
                .ok()
                .map(|s| s.f64().unwrap().clone()),
            _ => None,
        })
        .collect();
    for row in 0..df.height() {
        let mut d = Document::new();
        let mut id = None;
        for (j, c) in schema.columns.iter().enumerate() {
            let value = match c.kind {
                RawType::Integer | RawType::Number => {
                    match floats[j]
                        .as_ref()
                        .and_then(|f| f.get(row))
                        .filter(|x| !x.is_nan())
                    {
                        Some(x) if c.kind == RawType::Integer && x.fract() == 0.0 => {
                            Bson::Int64(x as i64)
                        }
                        Some(x) => Bson::Double(x),
                        None => Bson::Null,
                    }
                }
                RawType::Category | RawType::Date => match columns[j].str()?.get(row) {
                    Some(s) => Bson::String(s.to_string()),
                    None => Bson::Null,
                },
            };
            if c.name == "ID" {
                id = match value {
                    Bson::Int64(v) => Some(v),
                    _ => None,
                };
            }
            d.insert(c.name.clone(), value);
        }
        match id {
            Some(id) => docs.push((id, d)),
            None => without_id += 1,
        }
    }
    Ok((docs, without_id))
}

/// The `ID`s the collection already holds.
async fn existing_ids(
    target: &MongoSource,
    coll: &mongodb::Collection<Document>,
) -> Result<std::collections::HashSet<i64>> {
    let mut existing = std::collections::HashSet::new();
    let mut cursor = coll
        .find(doc! {})
        .projection(doc! { "ID": 1, "_id": 0 })
        .await
        .map_err(|e| target.fail("find", e))?;
    while cursor
        .advance()
        .await
        .map_err(|e| target.fail("cursor", e))?
    {
        let d = cursor
            .deserialize_current()
            .map_err(|e| target.fail("document", e))?;
        match d.get("ID") {
            Some(Bson::Int64(v)) => existing.insert(*v),
            Some(Bson::Int32(v)) => existing.insert(*v as i64),
            Some(Bson::Double(v)) => existing.insert(*v as i64),
            _ => false,
        };
    }
    // The client's shutdown waits for every cursor to be dropped.
    drop(cursor);
    Ok(existing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_database_collection_and_hosts() {
        let s = MongoSource::parse("mongodb://u:pw@db1:27017/shop?collection=customers&appName=x")
            .unwrap();
        assert_eq!(s.db, "shop");
        assert_eq!(s.collection, "customers");
        assert_eq!(s.hosts, "db1:27017");
        assert_eq!(s.uri, "mongodb://u:pw@db1:27017/shop?appName=x");
        assert!(!s.name().contains("pw"));
        for bad in [
            "mongodb://db1:27017/shop",
            "mongodb://db1:27017/?collection=c",
            "mongodb+srv://cluster/shop?collection=c",
            "mongodb:///shop?collection=c",
        ] {
            assert!(MongoSource::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(redact("mongodb://u:pw@h/db"), "mongodb://u:***@h/db");
    }

    #[test]
    fn fields_are_converted_or_counted() {
        let mut numbers = Buffer::Numbers(Vec::new());
        assert!(matches!(
            push(
                &mut numbers,
                RawType::Number,
                None,
                Some(RawBsonRef::Int32(5))
            ),
            Cell::Value
        ));
        assert!(matches!(
            push(
                &mut numbers,
                RawType::Number,
                None,
                Some(RawBsonRef::String("7.5"))
            ),
            Cell::Value
        ));
        assert!(matches!(
            push(
                &mut numbers,
                RawType::Number,
                None,
                Some(RawBsonRef::String("lots"))
            ),
            Cell::Mistyped
        ));
        assert!(matches!(
            push(&mut numbers, RawType::Number, None, None),
            Cell::Missing
        ));
        let Buffer::Numbers(v) = numbers else {
            unreachable!()
        };
        assert_eq!(v, [Some(5.0), Some(7.5), None, None]);
        let mut text = Buffer::Text(Vec::new());
        let t = mongodb::bson::DateTime::from_millis(1_388_534_400_000); // 2014-01-01
        assert!(matches!(
            push(
                &mut text,
                RawType::Date,
                Some("%d-%m-%Y"),
                Some(RawBsonRef::DateTime(t))
            ),
            Cell::Value
        ));
        assert!(matches!(
            push(
                &mut text,
                RawType::Category,
                None,
                Some(RawBsonRef::Double(1.5))
            ),
            Cell::Mistyped
        ));
        let Buffer::Text(v) = text else {
            unreachable!()
        };
        assert_eq!(v, [Some("01-01-2014".to_string()), None]);
    }
}
