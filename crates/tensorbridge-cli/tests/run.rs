//! `tensorbridge_cli::run`, the library entry point the Python console script
//! calls: it returns the exit code and never exits the process itself.

use tensorbridge::format::npy::{self, LoadOptions};
use tensorbridge::{Casting, DType, Tensor};
use tensorbridge_cli::run;

#[test]
fn help_and_version_return_zero() {
    assert_eq!(run(["tensorbridge", "--help"]), 0);
    assert_eq!(run(["tensorbridge", "--version"]), 0);
    assert_eq!(run(["tensorbridge", "convert", "--help"]), 0);
}

#[test]
fn usage_errors_return_two() {
    assert_eq!(run(["tensorbridge"]), 2);
    assert_eq!(run(["tensorbridge", "inspect"]), 2);
    assert_eq!(run(["tensorbridge", "frobnicate"]), 2);
    // argv[0] is only the program's name, whatever it is.
    assert_eq!(
        run(["/some/where/else/tensorbridge-script.py", "--nope"]),
        2
    );
}

#[test]
fn bad_input_returns_one_and_convert_works() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.npy");
    assert_eq!(
        run([
            "tensorbridge".as_ref(),
            "inspect".as_ref(),
            missing.as_os_str()
        ]),
        1
    );

    let src = dir.path().join("a.npy");
    let dst = dir.path().join("b.npy");
    let t = Tensor::from_slice(&[1.5f64, -2.25, 3.0, 4.75], &[4])
        .unwrap()
        .reshape(&[2, 2])
        .unwrap();
    npy::save(&src, &t.view()).unwrap();
    let args = [
        "tensorbridge".as_ref(),
        "convert".as_ref(),
        src.as_os_str(),
        dst.as_os_str(),
        "--dtype".as_ref(),
        "float32".as_ref(),
    ];
    assert_eq!(run(args), 0);
    let got = npy::load(&dst, &LoadOptions::default()).unwrap();
    let want = t.cast(DType::Float32, Casting::Unsafe).unwrap();
    assert_eq!(got.dtype(), DType::Float32);
    assert_eq!(got.shape(), want.shape());
    assert_eq!(
        got.deep_copy().unwrap().as_bytes(),
        want.deep_copy().unwrap().as_bytes()
    );
}
