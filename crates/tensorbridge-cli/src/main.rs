//! `tensorbridge`: inspect and convert array files (work in progress: see issue 3).

fn main() {
    eprintln!("tensorbridge: no commands yet");
    std::process::exit(2);
}
