//! The Help Center's screenshots (`crates/server/help/img/`), taken by the
//! test suite from the real pages and the real app, so that the help cannot
//! drift from the product.
//!
//! Beside each `NAME.png` lies `NAME.txt`: the page's fingerprint when the
//! picture was taken (its size, a hash of its stylesheets, and its visible
//! words with every word that holds a digit — a number to match, a time, a
//! code — as `#`, a run of them as one). A journey that reaches the page
//! again takes a new picture only when the fingerprint changed: when a
//! page's words or look change, its screenshot changes with it, and a run
//! that changed nothing leaves the tree as it was.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::Session;

/// Where the Help Center's pictures live.
pub fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../server/help/img")
}

/// The page's size, stylesheet hash and visible words, as the browser
/// shows them now.
const FINGERPRINT: &str = "
    let css = '';
    for (const sheet of document.styleSheets) {
      try { for (const rule of sheet.cssRules) css += rule.cssText; } catch (e) { css += sheet.href; }
    }
    let h = 0x811c9dc5;
    for (let i = 0; i < css.length; i++) { h ^= css.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
    let text = document.body.innerText;
    for (const e of document.querySelectorAll(arguments[0] || ':not(*)')) text = text.split(e.innerText).join('#');
    return [window.innerWidth + 'x' + window.innerHeight, h.toString(16), text];";

/// The fingerprint of what `s` shows, the words of the elements `varies`
/// (CSS, may be empty) left out: what is drawn at random, such as which
/// security questions are asked.
pub fn fingerprint(s: &Session, varies: &str) -> String {
    let got = s.script(FINGERPRINT, json!([varies]));
    let part = |i: usize| got[i].as_str().unwrap_or_default().to_string();
    let words: Vec<String> = part(2)
        .lines()
        .map(|line| {
            let mut words: Vec<&str> = line
                .split_whitespace()
                .map(|w| {
                    // AM/PM: a clock's half of the day, like its digits.
                    if w.bytes().any(|b| b.is_ascii_digit()) || w == "AM" || w == "PM" {
                        "#"
                    } else {
                        w
                    }
                })
                .collect();
            // A time may be one word or two ("3:23:19 AM", "03:23:19"), as
            // the machine's locale has it: one mark for the run.
            words.dedup_by(|a, b| *a == "#" && *b == "#");
            words.join(" ")
        })
        .filter(|line| !line.is_empty())
        .collect();
    format!("{}\n{}\n{}\n", part(0), part(1), words.join("\n"))
}

/// Keeps the Help Center's picture `name` true to what `s` shows: when its
/// fingerprint changed (or it has none yet), `take` writes a new PNG to the
/// path it is given and the fingerprint is saved beside it. The words of
/// the elements `varies` (CSS, may be empty) do not count.
pub fn keep(s: &Session, name: &str, varies: &str, take: impl FnOnce(&Path)) {
    let dir = folder();
    let png = dir.join(format!("{name}.png"));
    let txt = dir.join(format!("{name}.txt"));
    let now = fingerprint(s, varies);
    let was = std::fs::read_to_string(&txt).ok();
    if png.exists() && was.as_deref() == Some(now.as_str()) {
        return;
    }
    // Under CI (`COUNTERSIGN_HELP_CHECK`, set by ./test.sh there) a picture
    // whose page now says other words was not retaken and committed with
    // the change: that fails. (A new size or stylesheet, which another
    // browser version may give, is retaken without failing.)
    let words = |f: &str| f.lines().skip(2).collect::<Vec<_>>().join("\n");
    if std::env::var_os("COUNTERSIGN_HELP_CHECK").is_some() {
        assert!(
            was.as_deref().map(words) == Some(words(&now)),
            "the Help Center's picture {name} is out of date: its page now says\n{now}\n\
             run ./test.sh and commit crates/server/help/img/{name}.png and .txt"
        );
    }
    std::fs::create_dir_all(&dir).expect("the Help Center's picture folder");
    take(&png);
    std::fs::write(&txt, now).expect("the picture's fingerprint");
    eprintln!(
        "help: {} changed, new screenshot {} (commit it with the change)",
        name,
        png.display()
    );
}
