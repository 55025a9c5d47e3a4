//! `task-mcp export`, `import` and `copy`: the dump on the wire (a header line with the format's
//! version, one JSON line per row, an end line with the row count), checked line by line as it is
//! read, and the pipes between a store and a file, or between two stores. Rows stream through a
//! bounded channel both ways, so memory does not grow with the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::store::dump::{DumpRow, FORMAT, FORMAT_VERSION, TABLES};
use crate::store::{NumberedRow, Store};

/// Rows in flight between the two sides.
const IN_FLIGHT: usize = 1024;
/// The longest line read: a task at its largest, or an event holding one, with ample room.
const MAX_LINE_BYTES: u64 = 4 * 1024 * 1024;

/// `task-mcp export [--to FILE]`.
pub async fn export(store: Arc<dyn Store>, to: Option<&Path>) -> anyhow::Result<()> {
    let rows = match to {
        None => {
            let mut out = BufWriter::new(tokio::io::stdout());
            write_dump(store.clone(), &mut out).await?
        }
        Some(path) => write_file(store.clone(), path).await?,
    };
    let whom = to.map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
    eprintln!("exported {rows} rows from {} to {whom}", store.info().location);
    Ok(())
}

/// Writes beside the target and renames at the end, so `FILE` is a whole dump or not there at all.
/// Owner-only: a dump holds API key hashes and everyone's tasks.
async fn write_file(store: Arc<dyn Store>, path: &Path) -> anyhow::Result<u64> {
    let partial = partial_path(path);
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true).mode(0o600);
    let file = options.open(&partial).await.with_context(|| format!("cannot create {}", partial.display()))?;
    let mut out = BufWriter::new(file);
    let written = write_dump(store, &mut out).await;
    let renamed = match written {
        Ok(rows) => {
            out.get_ref().sync_all().await.with_context(|| format!("cannot write {}", partial.display()))?;
            tokio::fs::rename(&partial, path).await.with_context(|| format!("cannot write {}", path.display()))?;
            Ok(rows)
        }
        Err(err) => Err(err),
    };
    if renamed.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    renamed
}

fn partial_path(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(|| "dump".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

async fn write_dump(store: Arc<dyn Store>, out: &mut (impl AsyncWrite + Unpin)) -> anyhow::Result<u64> {
    let header = json!({
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "store": store.info().kind,
        "schema_version": store.schema_version().await?,
        "exported_at": crate::store::dump::time_value(chrono::Utc::now()),
    });
    write_line(out, &header).await?;
    let (sender, mut rows) = mpsc::channel::<DumpRow>(IN_FLIGHT);
    let exporting = tokio::spawn(async move { store.export(sender).await });
    let mut written = 0u64;
    while let Some(row) = rows.recv().await {
        write_line(out, &row.to_json()).await?;
        written += 1;
    }
    let exported = exporting.await.context("the export stopped")??;
    anyhow::ensure!(exported == written, "the store sent {exported} rows but {written} were written");
    write_line(out, &json!({ "end": { "rows": written } })).await?;
    out.flush().await?;
    Ok(written)
}

async fn write_line(out: &mut (impl AsyncWrite + Unpin), value: &Value) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line).await
}

/// `task-mcp import [--from FILE] [--force]`.
pub async fn import(store: Arc<dyn Store>, from: Option<&Path>, force: bool) -> anyhow::Result<()> {
    let source = from.map_or_else(|| "stdin".to_string(), |p| p.display().to_string());
    let input: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match from {
        None => Box::new(tokio::io::stdin()),
        Some(path) => {
            Box::new(tokio::fs::File::open(path).await.with_context(|| format!("cannot open {}", path.display()))?)
        }
    };
    let (sender, rows) = mpsc::channel(IN_FLIGHT);
    let reading = tokio::spawn(read_dump(BufReader::new(input), sender));
    let imported = store.import(rows, force).await;
    let read = reading.await.context("reading the dump stopped")?;
    // A damaged line is the reason the import failed: say that rather than what it caused.
    let rows = match (read, imported) {
        (Err(err), _) => return Err(anyhow::Error::new(err).context(format!("{source} cannot be imported"))),
        (Ok(_), Err(err)) => return Err(anyhow::Error::new(err).context(format!("{source} was not imported"))),
        (Ok(_), Ok(rows)) => rows,
    };
    eprintln!("imported {rows} rows from {source} into {}", store.info().location);
    Ok(())
}

/// Reads and checks a dump, sending each row on; a line that is wrong is sent as an error (so the
/// import rolls back) and returned. Returns the number of rows.
async fn read_dump(mut input: impl AsyncBufRead + Unpin, rows: mpsc::Sender<Result<NumberedRow>>) -> Result<u64> {
    let outcome = read_lines(&mut input, &rows).await;
    if let Err(err) = &outcome {
        let _ = rows.send(Err(copy_of(err))).await;
    }
    outcome
}

async fn read_lines(input: &mut (impl AsyncBufRead + Unpin), rows: &mpsc::Sender<Result<NumberedRow>>) -> Result<u64> {
    let mut buffer = Vec::new();
    let mut line_number = 0u64;
    let mut read = 0u64;
    let mut table_index = 0usize;
    let mut ended = false;
    loop {
        buffer.clear();
        let length = (&mut *input)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut buffer)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot read the dump: {e}")))?;
        if length == 0 {
            break;
        }
        line_number += 1;
        let at = |message: String| Error::invalid(format!("line {line_number}"), message);
        if buffer.len() as u64 > MAX_LINE_BYTES {
            return Err(at(format!("longer than {MAX_LINE_BYTES} bytes: not a line of a dump")));
        }
        if ended {
            return Err(at("comes after the end line: the file was changed after it was written".into()));
        }
        let complete = buffer.last() == Some(&b'\n');
        let value: Value = serde_json::from_slice(&buffer).map_err(|e| {
            let hint = if complete { "" } else { " (the file ends inside this line: it is truncated)" };
            at(format!("is not JSON: {e}{hint}"))
        })?;
        if line_number == 1 {
            check_header(&value).map_err(at)?;
            continue;
        }
        if let Some(end) = value.get("end") {
            let count = end
                .get("rows")
                .and_then(Value::as_u64)
                .ok_or_else(|| at("an end line says {\"end\": {\"rows\": N}}".into()))?;
            if count != read {
                return Err(at(format!(
                    "the end line counts {count} rows but the file holds {read}: rows are missing or added"
                )));
            }
            ended = true;
            continue;
        }
        let row = DumpRow::from_json(&value).map_err(at)?;
        let index = TABLES.iter().position(|t| t.name == row.table.name).unwrap_or_default();
        if index < table_index {
            return Err(at(format!(
                "a {} row after {} rows: a dump lists its tables in the order {}",
                row.table.name,
                TABLES[table_index].name,
                TABLES.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
            )));
        }
        table_index = index;
        read += 1;
        if rows.send(Ok(NumberedRow { line: line_number, row })).await.is_err() {
            // The import stopped (it says why): nothing more to read.
            return Ok(read);
        }
    }
    if line_number == 0 {
        return Err(Error::invalid("line 1", "the dump is empty"));
    }
    if !ended {
        return Err(Error::invalid(
            format!("line {line_number}"),
            "the file ends here without its end line: it is truncated",
        ));
    }
    Ok(read)
}

fn check_header(value: &Value) -> std::result::Result<(), String> {
    if value.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(format!("is not the header of a task-mcp export (it says {{\"format\": \"{FORMAT}\", …}})"));
    }
    match value.get("version").and_then(Value::as_u64) {
        Some(version) if version > FORMAT_VERSION => Err(format!(
            "the dump's format version is {version}, written by a newer task-mcp; this one reads versions up to \
             {FORMAT_VERSION}: import it with a task-mcp at least as new as the one that exported it"
        )),
        Some(version) if version >= 1 => Ok(()),
        _ => Err("the header's \"version\" must be a format version (a positive integer)".into()),
    }
}

/// Opens the store a copy reads: an embedded file that does not exist is a mistake in the URL, not an
/// empty store to create.
pub fn open_source(url: &str, pool_size: usize) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        anyhow::ensure!(Path::new(path).exists(), "--from: there is no SQLite file at {path}");
    }
    crate::store::open(url, pool_size).context("--from")
}

/// `task-mcp copy --from URL --to URL [--force]`: an export piped into an import, in memory.
pub async fn copy(from: Arc<dyn Store>, to: Arc<dyn Store>, force: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        from.info().location != to.info().location,
        "--from and --to name the same store ({}): a copy needs two",
        from.info().location
    );
    let (export_sender, mut exported) = mpsc::channel::<DumpRow>(IN_FLIGHT);
    let (import_sender, to_import) = mpsc::channel(IN_FLIGHT);
    let source = from.clone();
    let exporting = tokio::spawn(async move { source.export(export_sender).await });
    // Forwards rows, numbered as the lines of the equivalent export file; an export that fails is
    // forwarded as an error, so the import never commits a partial copy.
    let forwarding = tokio::spawn(async move {
        let mut line = 1u64;
        while let Some(row) = exported.recv().await {
            line += 1;
            if import_sender.send(Ok(NumberedRow { line, row })).await.is_err() {
                return;
            }
        }
        let failure = match exporting.await {
            Ok(Ok(_)) => return,
            Ok(Err(err)) => err,
            Err(err) => Error::Internal(format!("the export stopped: {err}")),
        };
        let _ = import_sender.send(Err(failure)).await;
    });
    let imported = to.import(to_import, force).await;
    let _ = forwarding.await;
    let rows = imported
        .with_context(|| format!("nothing was copied from {} to {}", from.info().location, to.info().location))?;
    eprintln!("copied {rows} rows from {} to {}", from.info().location, to.info().location);
    Ok(())
}

/// The error again, for the second of the two places it is reported.
fn copy_of(err: &Error) -> Error {
    match err {
        Error::Invalid(e) => Error::Invalid(e.clone()),
        Error::Unavailable(m) => Error::Unavailable(m.clone()),
        other => Error::Internal(other.to_string()),
    }
}
