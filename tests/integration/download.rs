//! `models/download.sh` offline: a local catalogue and `file://` URLs stand in for
//! Hugging Face, to check that it verifies the SHA-256 and resumes partial downloads.

use std::path::Path;
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

use crate::common::root;

/// Bytes that differ from one position to the next.
fn bytes(seed: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs download.sh NAME with the catalogue entry `name size sha256`, the files served
/// from `server`, and models written to `models`.
fn download(tmp: &Path, name: &str, size: usize, sha256: &str) -> Output {
    let catalogue = tmp.join("catalogue.tsv");
    std::fs::write(&catalogue, format!("# test\n{name}\t{size}\t{sha256}\n")).unwrap();
    Command::new("bash")
        .arg(root().join("models/download.sh"))
        .arg(name)
        .env("CANTOCAP_MODEL_CATALOGUE", &catalogue)
        .env("CANTOCAP_MODELS_DIR", tmp.join("models"))
        .env("CANTOCAP_MODEL_BASE_URL", format!("file://{}", tmp.join("server").display()))
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("server")).unwrap();
    std::fs::create_dir(tmp.path().join("models")).unwrap();
    tmp
}

#[test]
fn download_sh_saves_a_file_whose_sha256_matches() {
    let tmp = setup();
    let data = bytes(1, 200_000);
    std::fs::write(tmp.path().join("server/ggml-t.bin"), &data).unwrap();
    let out = download(tmp.path(), "t", data.len(), &hex_sha256(&data));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(tmp.path().join("models/ggml-t.bin")).unwrap(), data);
    assert!(!tmp.path().join("models/ggml-t.bin.part").exists());
    // A second run checks the file and leaves it.
    let out = download(tmp.path(), "t", data.len(), &hex_sha256(&data));
    assert!(out.status.success() && text(&out).contains("already exists"), "{}", text(&out));
}

#[test]
fn download_sh_refuses_a_corrupted_file() {
    let tmp = setup();
    let data = bytes(2, 200_000);
    let mut served = data.clone();
    served[123_456] ^= 1;
    std::fs::write(tmp.path().join("server/ggml-t.bin"), &served).unwrap();
    let out = download(tmp.path(), "t", data.len(), &hex_sha256(&data));
    assert!(!out.status.success());
    assert!(text(&out).contains("SHA-256"), "{}", text(&out));
    assert!(!tmp.path().join("models/ggml-t.bin").exists(), "a bad file must not be kept");
    assert!(!tmp.path().join("models/ggml-t.bin.part").exists());
    // A damaged file already in place is named, not trusted.
    std::fs::write(tmp.path().join("models/ggml-t.bin"), &served).unwrap();
    let out = download(tmp.path(), "t", data.len(), &hex_sha256(&data));
    assert!(!out.status.success() && text(&out).contains("remove it"), "{}", text(&out));
}

#[test]
fn download_sh_resumes_a_partial_download() {
    let tmp = setup();
    // The partial file's first half differs from the server's: only a real resume
    // (keep the part, fetch the rest) gives the bytes whose hash the catalogue holds;
    // a fresh download would give the server's file and fail the check.
    let (n, half) = (300_000, 120_000);
    let served = bytes(3, n);
    let partial = bytes(4, half);
    let mut expected = partial.clone();
    expected.extend_from_slice(&served[half..]);
    std::fs::write(tmp.path().join("server/ggml-t.bin"), &served).unwrap();
    std::fs::write(tmp.path().join("models/ggml-t.bin.part"), &partial).unwrap();
    let out = download(tmp.path(), "t", n, &hex_sha256(&expected));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Resuming"), "{}", text(&out));
    assert_eq!(std::fs::read(tmp.path().join("models/ggml-t.bin")).unwrap(), expected);
}

#[test]
fn the_catalogue_has_a_sha256_and_size_for_every_model() {
    let catalogue = std::fs::read_to_string(root().join("models/catalogue.tsv")).unwrap();
    let rows: Vec<Vec<&str>> = catalogue
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').collect())
        .collect();
    assert!(rows.len() >= 13, "{rows:?}");
    for row in &rows {
        assert_eq!(row.len(), 3, "{row:?}");
        assert!(row[1].parse::<u64>().unwrap() > 10_000_000, "{row:?}");
        assert!(row[2].len() == 64 && row[2].chars().all(|c| c.is_ascii_hexdigit()), "{row:?}");
    }
    for name in ["large-v3-turbo", "large-v3-turbo-q5_0", "base"] {
        assert!(rows.iter().any(|r| r[0] == name), "{name} missing");
    }
}
