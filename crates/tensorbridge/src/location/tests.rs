//! The location layer through object_store's in-memory store (`memory://`): the
//! same code paths as S3, GCS, Azure and HTTP.

use std::io::{Read, Seek, SeekFrom, Write};

use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, PutPayload};

use super::runtime::block_on;
use super::*;

fn loc(s: &str) -> Location {
    Location::parse(s, &StorageOptions::new()).unwrap()
}

fn remote(s: &str) -> RemoteUrl {
    match loc(s) {
        Location::Remote(r) => r,
        Location::Local(p) => panic!("{p:?} is local"),
    }
}

fn put(key: &str, bytes: Vec<u8>) {
    block_on(memory_store().put(&ObjPath::from(key), PutPayload::from(bytes)))
        .unwrap()
        .unwrap();
}

fn exists(key: &str) -> bool {
    block_on(memory_store().head(&ObjPath::from(key)))
        .unwrap()
        .is_ok()
}

#[test]
fn parses_paths_and_urls() {
    assert_eq!(loc("a/b.npy"), Location::Local("a/b.npy".into()));
    assert_eq!(loc("/tmp/x.npy"), Location::Local("/tmp/x.npy".into()));
    assert_eq!(
        loc("file:///tmp/x.npy"),
        Location::Local("/tmp/x.npy".into())
    );
    for u in [
        "s3://bucket/k.npy",
        "gs://b/k",
        "az://c/k",
        "abfss://c@acct.dfs.core.windows.net/k",
        "https://example.com/x.npy",
        "memory:///x",
    ] {
        assert!(loc(u).is_remote(), "{u}");
    }
    assert_eq!(
        loc("s3://bucket/dir/K.NPY").extension().as_deref(),
        Some("npy")
    );
    let e = Location::parse("ftp://host/x.npy", &StorageOptions::new()).unwrap_err();
    assert!(matches!(e, Error::UnsupportedScheme { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("ftp://host/x.npy") && msg.contains("s3://") && msg.contains("gs://"),
        "{msg}"
    );
    let r = remote("s3://bucket/dir/x.tfrecord");
    assert_eq!(
        r.sibling("x-00001.tfrecord").unwrap().as_str(),
        "s3://bucket/dir/x-00001.tfrecord"
    );
    assert_eq!(r.file_name(), "x.tfrecord");
}

#[test]
fn unknown_storage_option_is_refused() {
    let mut o = StorageOptions::new();
    o.insert("aws_no_such_key".into(), "1".into());
    let Location::Remote(r) = Location::parse("s3://b/k", &o).unwrap() else {
        panic!()
    };
    let e = RemoteObject::open(&r).unwrap_err().to_string();
    assert!(
        e.contains("aws_no_such_key") && e.contains("s3://b/k"),
        "{e}"
    );
}

#[test]
fn ranged_reads_and_streams() {
    let data: Vec<u8> = (0..(20u32 << 20) + 123)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    put("loc-tests/big.bin", data.clone());
    let obj = RemoteObject::open(&remote("memory:///loc-tests/big.bin")).unwrap();
    assert_eq!(obj.size(), data.len() as u64);
    assert_eq!(obj.get_range(5..17).unwrap().as_ref(), &data[5..17]);
    assert_eq!(
        obj.get_upto(data.len() as u64 - 3, 100).unwrap().as_ref(),
        &data[data.len() - 3..]
    );
    let mut buf = vec![0u8; data.len() - 1000];
    obj.read_into(1000, &mut buf).unwrap();
    assert_eq!(buf, &data[1000..]);
    let got = obj.get_ranges(&[0..3, 100..110, 7..8]).unwrap();
    assert_eq!(got[1].as_ref(), &data[100..110]);
    let mut s = ObjectStream::new(&obj, 10..(9 << 20)).unwrap();
    let mut out = vec![];
    s.read_to_end(&mut out).unwrap();
    assert_eq!(out, &data[10..9 << 20]);
    assert!(obj.get_range(0..data.len() as u64 + 1).is_err());
}

#[test]
fn missing_object_is_not_found() {
    let e = RemoteObject::open(&remote("memory:///loc-tests/nothing.npy")).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("memory:///loc-tests/nothing.npy"));
}

#[test]
fn replaced_object_is_an_error_not_mixed_bytes() {
    put("loc-tests/changing.bin", vec![1u8; 1 << 20]);
    let obj = RemoteObject::open(&remote("memory:///loc-tests/changing.bin")).unwrap();
    assert_eq!(obj.get_range(0..4).unwrap().as_ref(), &[1, 1, 1, 1]);
    put("loc-tests/changing.bin", vec![2u8; 1 << 20]);
    let e = obj.get_range(4..8).unwrap_err();
    assert!(matches!(e, Error::ObjectChanged { .. }), "{e:?}");
    let mut s = ObjectStream::whole(&obj).unwrap();
    let mut out = vec![];
    let e = s.read_to_end(&mut out).unwrap_err();
    assert!(e.to_string().contains("changed"), "{e}");
}

#[test]
fn writer_appears_only_on_commit_and_aborts_on_drop() {
    let big: Vec<u8> = (0..(19u32 << 20)).map(|i| (i % 253) as u8).collect();
    for (key, data) in [
        ("loc-tests/small.out", b"hello".to_vec()),
        ("loc-tests/big.out", big),
    ] {
        let url = format!("memory:///{key}");
        {
            let mut w = Sink::create(&loc(&url), false).unwrap();
            w.write_all(&data).unwrap();
            // Dropped without commit: nothing appears, the upload is aborted.
        }
        assert!(!exists(key), "{key}");
        let mut w = Sink::create(&loc(&url), false).unwrap();
        w.write_all(&data).unwrap();
        assert!(!exists(key));
        w.commit().unwrap();
        let obj = RemoteObject::open(&remote(&url)).unwrap();
        let mut back = vec![0u8; obj.size() as usize];
        obj.read_into(0, &mut back).unwrap();
        assert_eq!(back, data);
    }
}

#[test]
fn spooled_writer_seeks_and_leaves_no_temp_file() {
    let url = "memory:///loc-tests/spooled.out";
    let mut w = Sink::create(&loc(url), true).unwrap();
    w.write_all(b"xxxxworld").unwrap();
    w.seek(SeekFrom::Start(0)).unwrap();
    w.write_all(b"1234").unwrap();
    let tmp = match &w {
        Sink::Spool(s) => format!("{s:?}"),
        other => panic!("{other:?}"),
    };
    w.commit().unwrap();
    let obj = RemoteObject::open(&remote(url)).unwrap();
    assert_eq!(obj.get_range(0..9).unwrap().as_ref(), b"1234world");
    assert!(tmp.contains("tb-spool"));
    {
        let mut w = Sink::create(&loc("memory:///loc-tests/spool-dropped.out"), true).unwrap();
        w.write_all(b"abc").unwrap();
    }
    assert!(!exists("loc-tests/spool-dropped.out"));
}

#[test]
fn lists_a_prefix_sorted() {
    for k in ["b.npy", "a.npy", "c.txt"] {
        put(&format!("loc-tests/list/{k}"), vec![0; 3]);
    }
    let got = list(&remote("memory:///loc-tests/list/")).unwrap();
    let urls: Vec<_> = got.iter().map(|o| o.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "memory:///loc-tests/list/a.npy",
            "memory:///loc-tests/list/b.npy",
            "memory:///loc-tests/list/c.txt"
        ]
    );
}

#[test]
fn globs_a_prefix_listing_sorted() {
    for k in [
        "g/b1.npy",
        "g/a2.npy",
        "g/a1.npz",
        "g/sub/a3.npy",
        "gx/a4.npy",
    ] {
        put(&format!("loc-tests/{k}"), vec![0; 3]);
    }
    let urls = |p: &str| -> Vec<String> {
        glob(&remote(p))
            .unwrap()
            .into_iter()
            .map(|o| o.url)
            .collect()
    };
    assert_eq!(
        urls("memory:///loc-tests/g/*.npy"),
        [
            "memory:///loc-tests/g/a2.npy",
            "memory:///loc-tests/g/b1.npy"
        ]
    );
    assert_eq!(
        urls("memory:///loc-tests/g/**.npy"),
        [
            "memory:///loc-tests/g/a2.npy",
            "memory:///loc-tests/g/b1.npy",
            "memory:///loc-tests/g/sub/a3.npy"
        ]
    );
    assert!(urls("memory:///loc-tests/g/*.tfrecord").is_empty());
    assert!(has_wildcard("s3://b/*.npy") && !has_wildcard("s3://b/x.npy"));
}

/// The object opened by `open_streaming`, bytes `offset..` filled by `fill_whole`.
fn assemble(url: &RemoteUrl, first: usize, head: usize, offset: u64) -> Vec<u8> {
    let (obj, got, body) = RemoteObject::open_streaming(url, first, head).unwrap();
    assert!(got.len() as u64 >= obj.size().min(head as u64));
    let mut out = vec![0xA5u8; (obj.size() - offset) as usize];
    obj.fill_whole(&got, body, offset, &mut out).unwrap();
    out
}

#[test]
fn open_reading_takes_size_and_etag_from_the_first_get() {
    let data: Vec<u8> = (0..(17u32 << 20) + 5)
        .map(|i| (i * 13 % 241) as u8)
        .collect();
    put("loc-tests/first.bin", data.clone());
    let url = remote("memory:///loc-tests/first.bin");
    let (obj, head) = RemoteObject::open_reading(&url, 4096).unwrap();
    assert_eq!(obj.size(), data.len() as u64);
    assert!(obj.etag().is_some());
    assert_eq!(head.as_ref(), &data[..4096]);
    // A first read longer than the object: the object's bytes, no error.
    put("loc-tests/short.bin", b"abc".to_vec());
    let (short, head) =
        RemoteObject::open_reading(&remote("memory:///loc-tests/short.bin"), 1 << 20).unwrap();
    assert_eq!((short.size(), head.as_ref()), (3, &b"abc"[..]));
    // A 0-byte object: its range is refused; a HEAD tells it is empty.
    put("loc-tests/empty.bin", vec![]);
    let (empty, head) =
        RemoteObject::open_reading(&remote("memory:///loc-tests/empty.bin"), 4096).unwrap();
    assert_eq!((empty.size(), head.len()), (0, 0));
    let e = RemoteObject::open_reading(&remote("memory:///loc-tests/no-such.bin"), 64).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    // The whole object: the first bytes, the rest of the first body as it streams,
    // then the rest by range; from any offset (inside the head, the first body, or
    // past it), with a head longer or shorter than the offset.
    for (head, offset) in [
        (4096, 128),
        (4096, 0),
        (100, 5000),
        (4096, PIECE as u64 + 7),
    ] {
        assert_eq!(
            assemble(&url, PIECE, head, offset),
            &data[offset as usize..],
            "{head} {offset}"
        );
    }
    assert_eq!(assemble(&url, 1 << 20, 1 << 20, 3), &data[3..]);
    let short = remote("memory:///loc-tests/short.bin");
    assert_eq!(assemble(&short, PIECE, 4096, 0), b"abc");
    assert_eq!(assemble(&short, PIECE, 4096, 2), b"c");
    assert!(assemble(&remote("memory:///loc-tests/empty.bin"), PIECE, 4096, 0).is_empty());
}

#[test]
fn rest_of_a_replaced_object_is_an_error() {
    put("loc-tests/replaced-whole.bin", vec![1u8; 20 << 20]);
    let url = remote("memory:///loc-tests/replaced-whole.bin");
    let (obj, head, body) = RemoteObject::open_streaming(&url, 1 << 20, 4096).unwrap();
    assert!(head.iter().all(|&b| b == 1));
    put("loc-tests/replaced-whole.bin", vec![2u8; 20 << 20]);
    // The rest is asked for with If-Match on the first response's ETag.
    let mut buf = vec![0u8; 20 << 20];
    let e = obj.fill_whole(&head, body, 0, &mut buf).unwrap_err();
    assert!(matches!(e, Error::ObjectChanged { .. }), "{e:?}");
}

#[test]
fn ranges_split_into_even_pieces() {
    use super::object::split;
    let p = PIECE as u64;
    let lens = |r: std::ops::Range<u64>| split(r).map(|r| r.end - r.start).collect::<Vec<_>>();
    assert!(lens(5..5).is_empty());
    assert_eq!(lens(0..1), [1]);
    assert_eq!(lens(0..p), [p]);
    // A piece and a few bytes stay one request; two pieces are two.
    assert_eq!(lens(3..3 + p + 128), [p + 128]);
    assert_eq!(lens(0..2 * p), [p, p]);
    let r = 7..7 + 5 * p + 3;
    let pieces: Vec<_> = split(r.clone()).collect();
    assert_eq!(pieces.first().unwrap().start, r.start);
    assert_eq!(pieces.last().unwrap().end, r.end);
    assert!(pieces.windows(2).all(|w| w[0].end == w[1].start));
    let (lo, hi) = (
        pieces.iter().map(|r| r.end - r.start).min().unwrap(),
        pieces.iter().map(|r| r.end - r.start).max().unwrap(),
    );
    assert!(hi - lo <= 1 && hi <= p + p / 4, "{lo} {hi}");
}
