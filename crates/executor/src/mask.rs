//! Secret masking: a one-shot masker and a streaming masker that is exact across read boundaries.

use std::fmt;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, Input, MatchKind};

/// What every secret occurrence is replaced with.
pub const MASK: &[u8] = b"******";

/// The secrets could not be compiled into a matcher (only for absurdly large secret sets).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the secret matcher: {0}")]
pub struct MaskerError(String);

/// The compiled set of secrets of one job; cheap to clone and share between streams.
///
/// Patterns are every non-empty secret plus, for a multi-line secret, each of its lines that is
/// not blank (a step may print one line of a certificate on its own). Matching is leftmost-longest,
/// so a whole multi-line secret wins over its first line.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    // `None` when there is nothing to mask: the fast path copies bytes through.
    patterns: Option<Arc<Patterns>>,
}

struct Patterns {
    automaton: AhoCorasick,
    texts: Vec<Vec<u8>>,
    // Invariant: the length of the longest pattern, at least 1.
    max_len: usize,
}

/// Masks one byte stream fed in arbitrary pieces.
///
/// Invariant: the concatenated output of `feed`* `release_undecided`* `finish` equals
/// `Masker::mask` of the concatenated input, whatever the piece boundaries. Bytes that could still
/// be the start of a secret are held back (at most the longest secret's length minus one, plus any
/// bytes `release_undecided` could not prove harmless), so a secret split across reads or lines is
/// never emitted in part.
#[derive(Clone)]
pub struct MaskStream {
    masker: Masker,
    held: Vec<u8>,
}

impl Masker {
    /// A masker that masks nothing.
    pub fn none() -> Masker {
        Masker::default()
    }

    pub fn new<S: AsRef<str>>(secrets: &[S]) -> Result<Masker, MaskerError> {
        let mut texts: Vec<Vec<u8>> = Vec::new();
        let mut add = |text: &str| {
            if !text.is_empty() && !texts.iter().any(|known| known == text.as_bytes()) {
                texts.push(text.as_bytes().to_vec());
            }
        };
        for secret in secrets {
            let secret = secret.as_ref();
            add(secret);
            if secret.contains('\n') {
                for line in secret.split('\n') {
                    let line = line.strip_suffix('\r').unwrap_or(line);
                    if !line.trim().is_empty() {
                        add(line);
                    }
                }
            }
        }
        if texts.is_empty() {
            return Ok(Masker::none());
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&texts)
            .map_err(|err| MaskerError(err.to_string()))?;
        let max_len = texts.iter().map(Vec::len).max().unwrap_or(1);
        Ok(Masker {
            patterns: Some(Arc::new(Patterns {
                automaton,
                texts,
                max_len,
            })),
        })
    }

    /// True when there is no secret to mask.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_none()
    }

    /// Masks a complete text in one go.
    pub fn mask(&self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        match &self.patterns {
            None => out.extend_from_slice(input),
            Some(patterns) => {
                patterns.scan(input, 0, true, &mut out);
            }
        }
        out
    }

    /// Masks a complete UTF-8 text (messages, outputs). Masking never splits a UTF-8 sequence
    /// because secrets are themselves valid UTF-8.
    pub fn mask_str(&self, input: &str) -> String {
        if self.is_empty() {
            return input.to_owned();
        }
        String::from_utf8_lossy(&self.mask(input.as_bytes())).into_owned()
    }

    /// A fresh streaming masker for one byte stream (stdout or stderr of one step).
    pub fn stream(&self) -> MaskStream {
        MaskStream {
            masker: self.clone(),
            held: Vec::new(),
        }
    }
}

impl MaskStream {
    /// Masks the next piece of the stream, appending every byte that is now decided to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let Some(patterns) = &self.masker.patterns else {
            out.extend_from_slice(input);
            return;
        };
        let mut resume_at = 0;
        if !self.held.is_empty() {
            // Decide the held bytes using at most `max_len` bytes of lookahead from `input`, so
            // only a small joint buffer is copied; the rest of `input` is scanned in place.
            let held_len = self.held.len();
            let lookahead = input.len().min(patterns.max_len);
            self.held.extend_from_slice(&input[..lookahead]);
            let decided = patterns.scan(&self.held, 0, false, out);
            if lookahead < patterns.max_len {
                // The whole input is in `held` now.
                self.held.drain(..decided);
                return;
            }
            // With `max_len` bytes of lookahead every held byte is decided: `decided > held_len`.
            resume_at = decided.saturating_sub(held_len);
            self.held.clear();
        }
        let decided = patterns.scan(input, resume_at, false, out);
        self.held.extend_from_slice(&input[decided..]);
    }

    /// Emits held bytes that provably cannot start a secret, e.g. when the stream went quiet and
    /// the last complete line should not wait for more output. A held secret prefix stays held.
    pub fn release_undecided(&mut self, out: &mut Vec<u8>) {
        let Some(patterns) = &self.masker.patterns else {
            return;
        };
        let held = &self.held;
        let first_possible = (0..held.len())
            .find(|&start| {
                let rest = &held[start..];
                patterns.texts.iter().any(|text| {
                    let common = text.len().min(rest.len());
                    rest[..common] == text[..common]
                })
            })
            .unwrap_or(held.len());
        out.extend_from_slice(&held[..first_possible]);
        self.held.drain(..first_possible);
    }

    /// Ends the stream: masks and emits everything still held.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match &self.masker.patterns {
            None => out.extend_from_slice(&self.held),
            Some(patterns) => {
                patterns.scan(&self.held, 0, true, out);
            }
        }
        self.held.clear();
    }

    /// Number of bytes fed but not yet emitted.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }
}

// Hand-written so that secrets (patterns, held bytes) never reach a log through `{:?}`.
impl fmt::Debug for Patterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Patterns")
            .field("count", &self.texts.len())
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for MaskStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaskStream")
            .field("masker", &self.masker)
            .field("held_len", &self.held.len())
            .finish()
    }
}

impl Patterns {
    /// Masks `buf[start..]` into `out` as far as it is decided and returns where it stopped.
    ///
    /// A match starting at `s` is final once `s + max_len <= buf.len()`: every pattern that could
    /// start at or before `s` then lies entirely inside `buf`, so neither an earlier start nor a
    /// longer match at `s` can appear with more input. Bytes before the first undecided position
    /// that are not covered by a match are emitted unchanged. At end of stream all is decided.
    fn scan(&self, buf: &[u8], start: usize, at_eof: bool, out: &mut Vec<u8>) -> usize {
        let decidable_end = if at_eof {
            buf.len()
        } else {
            buf.len().saturating_sub(self.max_len - 1)
        };
        let mut position = start;
        for found in self
            .automaton
            .find_iter(Input::new(buf).span(start..buf.len()))
        {
            if found.start() >= decidable_end {
                break;
            }
            out.extend_from_slice(&buf[position..found.start()]);
            out.extend_from_slice(MASK);
            position = found.end();
        }
        let decided = position.max(decidable_end);
        out.extend_from_slice(&buf[position..decided]);
        decided
    }
}

#[cfg(test)]
mod tests;
