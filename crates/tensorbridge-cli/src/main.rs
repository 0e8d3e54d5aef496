//! `tensorbridge`: inspect and convert array files (`.npy`, `.npz`, `.safetensors`,
//! `.tfrecord`).
//!
//! - `tensorbridge inspect FILE... [--json]`: name, dtype, shape, order and bytes of
//!   every array (every `.npz` member, with its compression and stored size), read
//!   from headers only.
//! - `tensorbridge convert IN OUT [--dtype D] [--casting MODE]`: between formats (by
//!   extension), streaming in bounded memory between `.npy`/`.npz` (`.safetensors`
//!   and `.tfrecord` are held in memory), with a progress bar on stderr for large
//!   inputs. `--shards N` and `--gzip` apply to a `.tfrecord` input or output.
//!
//! On bad input the exit code is 1 and stderr gets one line naming the file and the
//! reason; no output file is left behind.

mod formats;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tensorbridge::{cast_into, Casting, DType, Error, TensorView};

use formats::{create_output, inspect, open_input, swapped, ArrayInfo, Format, Options};

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
    },
    /// Convert between .npy, .npz, .safetensors and .tfrecord (by extension).
    Convert(ConvertArgs),
}

/// An error for the user: one line, naming the file.
#[derive(Debug)]
pub struct CliError(String);

impl CliError {
    /// `path: reason`.
    pub fn new(path: &Path, reason: impl std::fmt::Display) -> CliError {
        CliError(format!("{}: {reason}", path.display()))
    }

    /// A core error; errors that do not name a file get `path` in front.
    pub fn from_error(e: Error, path: &Path) -> CliError {
        match e {
            Error::Io { .. } | Error::Format { .. } => CliError(e.to_string()),
            e => CliError::new(path, e),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { files, json } => run_inspect(&files, json),
        Command::Convert(args) => run_convert(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(errors) => {
            for CliError(msg) in errors {
                // One line per problem, whatever the message holds.
                eprintln!("tensorbridge: {}", msg.replace(['\n', '\r'], " "));
            }
            ExitCode::from(1)
        }
    }
}

// --- inspect ----------------------------------------------------------------------

#[derive(serde::Serialize)]
struct FileReport {
    path: String,
    format: &'static str,
    arrays: Vec<ArrayInfo>,
}

fn run_inspect(files: &[PathBuf], json: bool) -> Result<(), Vec<CliError>> {
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match inspect(f) {
            Ok((fmt, arrays)) => reports.push(FileReport {
                path: f.display().to_string(),
                format: fmt.name(),
                arrays,
            }),
            Err(e) => errors.push(e),
        }
    }
    let text = if json {
        format!("{:#}\n", serde_json::json!({ "files": reports }))
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
    match shape {
        [n] => format!("({n},)"),
        s => format!(
            "({})",
            s.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
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
}

/// Bytes of input elements per streaming step.
const CHUNK_BYTES: usize = 8 << 20;
/// Inputs with more element bytes than this get a progress bar.
const PROGRESS_BYTES: u64 = 100_000_000;

fn run_convert(a: &ConvertArgs) -> Result<(), Vec<CliError>> {
    convert(a).map_err(|e| vec![e])
}

fn convert(a: &ConvertArgs) -> Result<(), CliError> {
    let (inp, out) = (a.input.as_path(), a.output.as_path());
    let casting: Casting = a
        .casting
        .parse()
        .map_err(|e| CliError(format!("--casting: {e}")))?;
    let target: Option<DType> = a
        .dtype
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| CliError(format!("--dtype: {e}")))?;
    let in_fmt = Format::of(inp)?;
    let out_fmt = Format::of(out)?;
    if (a.shards.is_some() || a.gzip) && in_fmt != Format::Tfrecord && out_fmt != Format::Tfrecord {
        let flag = if a.shards.is_some() {
            "--shards"
        } else {
            "--gzip"
        };
        return Err(CliError(format!(
            "{flag} applies only to a .tfrecord input or output, not .{} → .{}",
            in_fmt.name(),
            out_fmt.name()
        )));
    }
    if a.shards == Some(0) {
        return Err(CliError("--shards: must be at least 1".into()));
    }
    let opts = |fmt: Format| Options {
        compress: a.compress,
        shards: if fmt == Format::Tfrecord {
            a.shards.unwrap_or(1)
        } else {
            1
        },
        gzip: a.gzip && fmt == Format::Tfrecord,
    };

    let input = open_input(inp, opts(in_fmt))?;
    let in_err = |e: Error| CliError::from_error(e, inp);
    let mut arrays = input.arrays().map_err(in_err)?;
    if let Some(m) = &a.member {
        arrays.retain(|x| &x.name == m);
        if arrays.is_empty() {
            return Err(CliError::new(inp, format!("no array named {m:?}")));
        }
    }
    // Check everything that can be checked before any output exists.
    let mut plan = Vec::with_capacity(arrays.len());
    for info in &arrays {
        let label = &info.label;
        // A '<V2' array (NumPy's bfloat16) is two raw bytes: copied as they are (and
        // written as '<V2' again), or read as bfloat16 with --dtype bfloat16. Casting
        // it to anything else would be a guess.
        let stored = match (info.header.dtype, target) {
            (None, None) => DType::BFloat16,
            _ => info.header.resolve_dtype(target, label).map_err(|e| {
                CliError(
                    e.to_string()
                        .replace("by asking for dtype bfloat16", "with --dtype bfloat16")
                        + ", or convert without --dtype to copy it as it is",
                )
            })?,
        };
        let to = target.unwrap_or(stored);
        stored
            .check_cast(to, casting)
            .map_err(|e| CliError(format!("{label}: {e}")))?;
        plan.push((info, stored, to));
    }
    let total: u64 = arrays.iter().map(|x| x.bytes).sum();

    if let Some(n) = out_fmt.arrays_per_file() {
        if plan.len() != n {
            return Err(CliError::new(
                inp,
                format!(
                    "has {} arrays but a .{} file holds {n}; choose one with --member",
                    plan.len(),
                    out_fmt.name()
                ),
            ));
        }
    }
    let mut output = create_output(out, opts(out_fmt))?;
    let show = !a.quiet && total > PROGRESS_BYTES && std::io::stderr().is_terminal();
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

    let out_err = |e: Error| CliError::from_error(e, out);
    let mut inbuf = vec![0u64; CHUNK_BYTES / 8];
    let mut outbuf: Vec<u64> = Vec::new();
    for (info, stored, to) in plan {
        let header = &info.header;
        let label = PathBuf::from(&info.label);
        output
            .begin(&info.name, to, &header.shape, header.fortran_order)
            .map_err(out_err)?;
        let mut stream = input.stream(&info.name).map_err(in_err)?;
        let mut done = 0usize; // elements
        loop {
            let chunk = stream
                .read_chunk(bytemuck::cast_slice_mut(&mut inbuf))
                .map_err(in_err)?;
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len() / stored.size();
            if stored == to && !swapped(stored, header.byte_order) {
                output.write(chunk).map_err(out_err)?;
            } else {
                let view = TensorView::new(
                    chunk,
                    stored,
                    vec![n],
                    vec![stored.size() as isize],
                    0,
                    header.byte_order,
                )
                .map_err(in_err)?;
                let need = n * to.size();
                if outbuf.len() * 8 < need {
                    outbuf.resize(need.div_ceil(8), 0);
                }
                let dst = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut outbuf)[..need];
                cast_into(&view, to, casting, dst)
                    .map_err(|e| CliError::new(&label, globalize(e, done, header)))?;
                output.write(dst).map_err(out_err)?;
            }
            done += n;
            bar.inc(chunk.len() as u64);
        }
    }
    output.commit().map_err(out_err)?;
    bar.finish_and_clear();
    Ok(())
}

/// A checked-cast error on one chunk, with the index made relative to the whole array.
fn globalize(e: Error, done: usize, header: &tensorbridge::format::npy::NpyHeader) -> Error {
    match e {
        Error::CastValue {
            from,
            to,
            index,
            value,
            reason,
        } => {
            let flat = done + index.first().copied().unwrap_or(0);
            let index = if header.fortran_order {
                let rev: Vec<usize> = header.shape.iter().rev().copied().collect();
                let mut i = tensorbridge::view::unravel(flat, &rev);
                i.reverse();
                i
            } else {
                tensorbridge::view::unravel(flat, &header.shape)
            };
            Error::CastValue {
                from,
                to,
                index,
                value,
                reason,
            }
        }
        e => e,
    }
}
