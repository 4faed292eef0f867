//! Shared fixtures: the captured sessions in `tests/data/` (see `tests/data/ATTRIBUTION.md`).

use std::path::PathBuf;
use std::sync::OnceLock;

/// The three captured Binance sessions.
pub(crate) const CAPTURES: [&str; 3] = ["BINANCE.ws.1.0", "BINANCE_US.ws.1.0", "BINANCE_FUTURES.ws.1.0"];

/// One captured websocket session.
#[derive(Debug)]
pub(crate) struct Capture {
    pub(crate) name: &'static str,
    /// The subscription URL of the session.
    pub(crate) url: String,
    /// Every frame received, in order.
    pub(crate) frames: Vec<Vec<u8>>,
}

impl Capture {
    /// Exchange symbols of the session (upper case), from its URL's stream list.
    pub(crate) fn symbols(&self) -> Vec<String> {
        let streams = self.url.split("streams=").nth(1).unwrap_or_default();
        let mut out: Vec<String> = Vec::new();
        for s in streams.split('/') {
            let sym = s.split('@').next().unwrap_or_default().to_ascii_uppercase();
            if !sym.is_empty() && !out.contains(&sym) {
                out.push(sym);
            }
        }
        out
    }

    /// Frames whose stream is `<symbol>@<kind>`.
    pub(crate) fn frames_of(&self, kind: &str) -> Vec<&[u8]> {
        let needle = format!("@{kind}\"");
        self.frames.iter().filter(|f| contains(f, needle.as_bytes())).map(|f| f.as_slice()).collect()
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn load(name: &'static str) -> Capture {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header = lines.next().expect("header line");
    let url = header.split(" <-> ").next().expect("url").to_string();
    let mut frames = Vec::new();
    for line in lines {
        if line.is_empty() || line.contains(" <- ") {
            continue; // blank, or a frame the client sent
        }
        let (_time, frame) = line.split_once(": ").expect("`<time>: <frame>` line");
        frames.push(frame.as_bytes().to_vec());
    }
    assert!(!frames.is_empty(), "{name}: no frames");
    Capture { name, url, frames }
}

/// All captures, loaded once.
pub(crate) fn captures() -> &'static [Capture] {
    static ALL: OnceLock<Vec<Capture>> = OnceLock::new();
    ALL.get_or_init(|| CAPTURES.iter().map(|n| load(n)).collect())
}

/// One capture by file name.
pub(crate) fn capture(name: &str) -> &'static Capture {
    captures().iter().find(|c| c.name == name).expect("known capture")
}
