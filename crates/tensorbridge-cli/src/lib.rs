//! `tensorbridge`: inspect and convert array files (`.npy`, `.npz`, `.safetensors`,
//! `.tfrecord`).
//!
//! - `tensorbridge inspect FILE... [--json]`: name, dtype, shape, order and bytes of
//!   every array (every `.npz` member, with its compression and stored size), read
//!   from headers only.
//! - `tensorbridge convert IN OUT [--dtype D] [--casting MODE]`: between formats (the
//!   input's by its first bytes, else its extension; the output's by its extension),
//!   streaming in bounded memory between `.npy`/`.npz` (`.safetensors`
//!   and `.tfrecord` are held in memory), with a progress bar on stderr for large
//!   inputs. `--shards N` and `--gzip` apply to a `.tfrecord` input or output.
//!
//! Any FILE, IN or OUT may be a URL of an object store (`s3://bucket/key`,
//! `gs://`, `az://`, `http(s)://`...): `inspect` then reads headers only (an `.npz`
//! object's central directory and each member's header), and `convert` reads or
//! writes it with ranged reads and a multipart upload (with the progress bar).
//! `--storage-option KEY=VALUE` (repeatable) configures the store with
//! object_store's keys (`aws_endpoint`, `aws_region`, ...), over the environment
//! (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...).
//!
//! On bad input the exit code is 1 and stderr gets one line naming the file and the
//! reason; no output file is left behind.
//!
//! The work is the core's: `tensorbridge::format::convert` (the same code Python's
//! `tb.convert_file` runs, with the same messages); this file parses arguments,
//! draws the progress bar and prints.
//!
//! This is a library so that one code path serves both doors: the `tensorbridge`
//! binary (`src/main.rs`, built by cargo) and the `tensorbridge` console script that
//! `pip install` puts on the PATH (the Python binding calls [`run`]).

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tensorbridge::format::convert::{self, ArrayInfo, ConvertOptions};
use tensorbridge::format::FileFormat;
use tensorbridge::location::{is_url, Location, StorageOptions};
use tensorbridge::{Casting, DType, Error};

/// Inspect and convert array files (.npy, .npz, .safetensors, .tfrecord).
#[derive(Parser)]
#[command(name = "tensorbridge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show every array's name, dtype, shape, order and size (headers only).
    Inspect {
        /// `.npy`, `.npz`, `.safetensors` or (uncompressed, unsharded) `.tfrecord` files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print one JSON document instead of a table.
        #[arg(long)]
        json: bool,
        /// A setting of the object store of URL arguments (repeatable): KEY=VALUE
        /// with object_store's keys, e.g. aws_endpoint=http://127.0.0.1:9000.
        #[arg(long = "storage-option", value_name = "KEY=VALUE")]
        storage_option: Vec<String>,
    },
    /// Convert between .npy, .npz, .safetensors and .tfrecord (input by content, output by extension).
    Convert(ConvertArgs),
}

/// An error for the user: one line, naming the file.
#[derive(Debug)]
struct CliError(String);

impl CliError {
    /// `path: reason`.
    fn new(path: &Path, reason: impl std::fmt::Display) -> CliError {
        CliError(format!("{}: {reason}", path.display()))
    }

    /// A core error; errors that do not name a file get `path` in front.
    fn from_error(e: Error, path: &Path) -> CliError {
        match e {
            Error::Io { .. }
            | Error::Format { .. }
            | Error::NotFound { .. }
            | Error::PermissionDenied { .. }
            | Error::ObjectChanged { .. }
            | Error::Remote { .. }
            | Error::Interrupted
            | Error::UnsupportedScheme { .. } => CliError(e.to_string()),
            e => CliError::new(path, e),
        }
    }
}

/// The program name in usage and help text, whatever `argv[0]` is (a cargo-built
/// binary, a pip-installed console script, `python -m ...`).
const PROGRAM: &str = "tensorbridge";

/// Run the command line `args` (`argv[0]` first, as from [`std::env::args_os`]) and
/// return the process exit code: 0 on success (and for `--help`/`--version`), 1 when
/// a file could not be read or written (one stderr line per problem, naming the
/// file), 2 for a usage error (clap's message on stderr).
///
/// Help and version text go to stdout, everything else to stderr; nothing here
/// exits the process, so a caller (the Python console script) decides what to do
/// with the code.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = Cli::command().bin_name(PROGRAM).try_get_matches_from(args);
    let cli = match matches.and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) => {
            // Help/version: stdout, code 0; usage errors: stderr, code 2. A closed
            // stdout or stderr leaves nothing to tell.
            let _ = e.print();
            let _ = std::io::stdout().flush();
            return e.exit_code();
        }
    };
    let result = match cli.command {
        Command::Inspect {
            files,
            json,
            storage_option,
        } => storage_options(&storage_option)
            .map_err(|e| vec![e])
            .and_then(|opts| run_inspect(&files, json, &opts)),
        Command::Convert(args) => run_convert(&args),
    };
    // Rust's stdout is buffered apart from Python's: empty it before returning.
    let _ = std::io::stdout().flush();
    match result {
        Ok(()) => 0,
        Err(errors) => {
            let mut stderr = std::io::stderr().lock();
            for CliError(msg) in errors {
                // One line per problem, whatever the message holds. A closed stderr
                // cannot be told about; the exit code still says it failed.
                let _ = writeln!(stderr, "tensorbridge: {}", msg.replace(['\n', '\r'], " "));
            }
            1
        }
    }
}

/// `--storage-option KEY=VALUE` flags → storage options.
fn storage_options(flags: &[String]) -> Result<StorageOptions, CliError> {
    flags
        .iter()
        .map(|f| {
            f.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| CliError(format!("--storage-option: expected KEY=VALUE, not {f:?}")))
        })
        .collect()
}

/// A path argument → a location: a URL (`scheme://...`) or a local path.
fn location(p: &Path, opts: &StorageOptions) -> Result<Location, CliError> {
    match p.to_str() {
        Some(s) if is_url(s) => Location::parse(s, opts).map_err(|e| CliError::from_error(e, p)),
        _ => Ok(Location::Local(p.to_path_buf())),
    }
}

// --- inspect ----------------------------------------------------------------------

struct FileReport {
    path: String,
    format: &'static str,
    arrays: Vec<ArrayInfo>,
}

/// One array as `inspect --json` shows it (fields that do not apply are left out).
fn array_json(a: &ArrayInfo) -> serde_json::Value {
    let mut v = serde_json::json!({
        "name": a.name,
        "dtype": a.dtype,
        "descr": a.descr,
        "shape": a.shape,
        "order": a.order,
        "bytes": a.bytes,
    });
    if let Some(m) = v.as_object_mut() {
        if let Some(c) = &a.compression {
            m.insert("compression".into(), c.clone().into());
        }
        if let Some(n) = a.compressed_size {
            m.insert("compressed_size".into(), n.into());
        }
        if let Some(n) = a.data_offset {
            m.insert("data_offset".into(), n.into());
        }
    }
    v
}

fn run_inspect(files: &[PathBuf], json: bool, opts: &StorageOptions) -> Result<(), Vec<CliError>> {
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        let loc = match location(f, opts) {
            Ok(l) => l,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        match convert::inspect_location(&loc) {
            Ok((fmt, arrays)) => reports.push(FileReport {
                path: f.display().to_string(),
                format: fmt.name(),
                arrays,
            }),
            Err(e) => errors.push(CliError::from_error(e, f)),
        }
    }
    let text = if json {
        let files: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| {
                serde_json::json!({
                    "path": r.path,
                    "format": r.format,
                    "arrays": r.arrays.iter().map(array_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        format!("{:#}\n", serde_json::json!({ "files": files }))
    } else {
        table(&reports)
    };
    // A closed pipe (`| head`) is not an error worth a message.
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            errors.push(CliError(format!("<stdout>: {e}")));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn shape_text(shape: &[usize]) -> String {
    tensorbridge::shape::ShapeDisplay(shape).to_string()
}

fn table(reports: &[FileReport]) -> String {
    let mut rows = vec![[
        "NAME", "DTYPE", "SHAPE", "ORDER", "BYTES", "STORAGE", "STORED",
    ]
    .map(String::from)];
    for r in reports {
        for a in &r.arrays {
            let name = if r.format != "npy" {
                format!("{}:{}", r.path, a.name)
            } else {
                r.path.clone()
            };
            rows.push([
                name,
                a.dtype.clone(),
                shape_text(&a.shape),
                a.order.to_string(),
                a.bytes.to_string(),
                a.compression.clone().unwrap_or_else(|| "-".into()),
                a.compressed_size
                    .map_or_else(|| "-".into(), |n| n.to_string()),
            ]);
        }
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i == 4 || i == 6 {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

// --- convert ----------------------------------------------------------------------

/// Arguments of `tensorbridge convert`.
#[derive(clap::Args)]
struct ConvertArgs {
    /// Input file.
    input: PathBuf,
    /// Output file (written under a temporary name, renamed when complete).
    output: PathBuf,
    /// Element type of the output (default: the input's). A `'<V2'` input (NumPy's
    /// bfloat16) needs `--dtype bfloat16`.
    #[arg(long)]
    dtype: Option<String>,
    /// Casting mode for --dtype: unsafe, same_kind, safe, checked or saturate.
    #[arg(long, default_value = "unsafe")]
    casting: String,
    /// Convert only this member of an .npz input (needed for .npz → .npy when the
    /// archive has several).
    #[arg(long)]
    member: Option<String>,
    /// Deflate the members of an .npz output (as np.savez_compressed).
    #[arg(long)]
    compress: bool,
    /// .tfrecord only: write (or read) N shard files, out-00000-of-0000N.tfrecord ...
    #[arg(long, value_name = "N")]
    shards: Option<usize>,
    /// .tfrecord only: gzip-compressed records (TensorFlow's "GZIP").
    #[arg(long)]
    gzip: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// A setting of the object store of a URL input or output (repeatable):
    /// KEY=VALUE with object_store's keys, e.g. aws_endpoint=http://127.0.0.1:9000.
    #[arg(long = "storage-option", value_name = "KEY=VALUE")]
    storage_option: Vec<String>,
}

/// Inputs with more element bytes than this get a progress bar.
const PROGRESS_BYTES: u64 = 100_000_000;

fn run_convert(a: &ConvertArgs) -> Result<(), Vec<CliError>> {
    convert_files(a).map_err(|e| vec![e])
}

fn convert_files(a: &ConvertArgs) -> Result<(), CliError> {
    let (inp, out) = (a.input.as_path(), a.output.as_path());
    let store_opts = storage_options(&a.storage_option)?;
    let (src, dst) = (location(inp, &store_opts)?, location(out, &store_opts)?);
    let casting: Casting = a
        .casting
        .parse()
        .map_err(|e| CliError(format!("--casting: {e}")))?;
    let dtype: Option<DType> = a
        .dtype
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| CliError(format!("--dtype: {e}")))?;
    // The flags' own names in the refusals of flags that do not apply.
    let is_tfrecord = |l: &Location, input: bool| {
        if input {
            tensorbridge::format::detect_location(l) == Some(FileFormat::Tfrecord)
        } else {
            l.extension().as_deref() == Some(FileFormat::Tfrecord.name())
        }
    };
    if (a.shards.is_some() || a.gzip) && !is_tfrecord(&src, true) && !is_tfrecord(&dst, false) {
        let flag = if a.shards.is_some() {
            "--shards"
        } else {
            "--gzip"
        };
        return Err(CliError(format!(
            "{flag} applies only to a .tfrecord input or output"
        )));
    }
    if a.shards == Some(0) {
        return Err(CliError("--shards: must be at least 1".into()));
    }
    let opts = ConvertOptions {
        dtype,
        casting,
        member: a.member.clone(),
        compress: a.compress,
        shards: a.shards.unwrap_or(1),
        gzip: a.gzip,
    };
    let conversion =
        convert::plan_locations(&src, &dst, &opts).map_err(|e| CliError::from_error(e, inp))?;
    let total = conversion.total_bytes();
    // Remote transfers always get the bar (they take time whatever their size).
    let remote = src.is_remote() || dst.is_remote();
    let show = !a.quiet && (total > PROGRESS_BYTES || remote) && std::io::stderr().is_terminal();
    let bar = if show {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(format!("{} → {}", inp.display(), out.display()));
        bar
    } else {
        ProgressBar::hidden()
    };
    conversion
        .run(&mut |n| bar.inc(n))
        .map_err(|e| CliError::from_error(e, out))?;
    bar.finish_and_clear();
    Ok(())
}
