//! Every story of the hpack-test-case corpus (`/work/shared/testdata/hpack-test-case`)
//! must decode exactly; and decoding from the middle of each story (a
//! mid-connection join) must only ever omit fields, never produce wrong ones.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};

use common::hex;
use weft_proto::hpack::Decoder;
use weft_proto::{Headers, Limits};

struct Case {
    table_size: Option<u32>,
    wire: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
}

fn corpus_dir() -> PathBuf {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/hpack-test-case");
    assert!(
        dir.is_dir(),
        "hpack-test-case corpus missing at {} (expected /work/shared/testdata/hpack-test-case)",
        dir.display()
    );
    dir
}

/// Every `story_*.json.gz`, grouped by encoder folder.
fn stories() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("read corpus dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("read encoder dir")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.starts_with("story_") && name.ends_with(".json.gz")
            })
            .collect();
        files.sort();
        out.extend(files);
    }
    assert!(
        out.len() >= 180,
        "expected the full corpus, found {} stories",
        out.len()
    );
    out
}

fn load(path: &Path) -> Vec<Case> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).expect("story JSON");
    json["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| Case {
            table_size: c
                .get("header_table_size")
                .and_then(|v| v.as_u64())
                .map(|v| v as u32),
            wire: hex(c["wire"].as_str().expect("wire")),
            headers: c["headers"]
                .as_array()
                .expect("headers")
                .iter()
                .map(|h| {
                    let (k, v) = h
                        .as_object()
                        .expect("object")
                        .iter()
                        .next()
                        .expect("one pair");
                    (
                        k.as_bytes().to_vec(),
                        v.as_str().expect("string").as_bytes().to_vec(),
                    )
                })
                .collect(),
        })
        .collect()
}

fn as_pairs(h: &Headers) -> Vec<(Vec<u8>, Vec<u8>)> {
    h.iter()
        .map(|f| (f.name.to_vec(), f.value.to_vec()))
        .collect()
}

#[test]
fn every_story_decodes_exactly() {
    let limits = Limits::default();
    let (mut n_stories, mut n_cases) = (0, 0);
    for path in stories() {
        let mut d = Decoder::new(&limits);
        let mut out = Headers::new();
        for (i, case) in load(&path).iter().enumerate() {
            if let Some(size) = case.table_size {
                d.set_max_table_size_setting(size);
            }
            out.clear();
            let st = d
                .decode(&case.wire, &mut out)
                .unwrap_or_else(|e| panic!("{} case {i}: {e}", path.display()));
            assert!(
                !st.is_incomplete() && !st.is_truncated(),
                "{} case {i}",
                path.display()
            );
            assert_eq!(as_pairs(&out), case.headers, "{} case {i}", path.display());
            assert!(d.is_synced());
            assert!(d.table_size() <= d.max_table_size());
            n_cases += 1;
        }
        n_stories += 1;
    }
    eprintln!("decoded {n_cases} header blocks from {n_stories} stories");
}

/// `got` must be `want` with some fields left out.
fn is_subsequence(got: &[(Vec<u8>, Vec<u8>)], want: &[(Vec<u8>, Vec<u8>)]) -> bool {
    let mut it = want.iter();
    got.iter().all(|g| it.any(|w| w == g))
}

#[test]
fn joining_mid_story_never_yields_wrong_headers() {
    let limits = Limits::default();
    let (mut blocks, mut complete, mut incomplete) = (0u64, 0u64, 0u64);
    for path in stories() {
        let cases = load(&path);
        for start in [1, cases.len() / 3, cases.len() / 2] {
            if start == 0 || start >= cases.len() {
                continue;
            }
            let mut d = Decoder::new_mid_connection(&limits);
            let mut out = Headers::new();
            for (i, case) in cases.iter().enumerate().skip(start) {
                out.clear();
                blocks += 1;
                match d.decode(&case.wire, &mut out) {
                    Ok(st) => {
                        let got = as_pairs(&out);
                        if st.is_incomplete() {
                            incomplete += 1;
                            assert!(
                                is_subsequence(&got, &case.headers),
                                "{} from {start}, case {i}: wrong field decoded",
                                path.display()
                            );
                        } else {
                            complete += 1;
                            assert_eq!(
                                got,
                                case.headers,
                                "{} from {start}, case {i}",
                                path.display()
                            );
                        }
                    }
                    Err(e) => panic!("{} from {start}, case {i}: {e}", path.display()),
                }
            }
        }
    }
    eprintln!("joined decoding: {blocks} blocks, {complete} complete, {incomplete} incomplete");
    assert!(
        complete > incomplete,
        "a joined decoder should recover as the table refills"
    );
}
