//! Progress bars, one per blob, as `docker push` draws them; hidden when
//! stderr is not a terminal (logs, tests) or when asked to be quiet.

use std::io::IsTerminal;

use indicatif::{
    MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle,
};

use crate::digest::Digest;

pub struct Progress {
    bars: MultiProgress,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Progress {
            bars: MultiProgress::with_draw_target(target),
        }
    }

    /// A bar for one blob of `size` bytes, labelled with its short digest.
    pub fn blob(&self, digest: &Digest, size: u64) -> ProgressBar {
        let style = ProgressStyle::with_template(
            "{prefix:.bold} [{bar:30}] {bytes:>10}/{total_bytes:<10} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bar = self.bars.add(ProgressBar::new(size));
        bar.set_style(style);
        bar.set_prefix(digest.short().to_string());
        bar
    }

    /// A one-line note for a blob that needed no transfer.
    pub fn skipped(&self, digest: &Digest, why: &'static str) {
        let bar = self.bars.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template("{prefix:.bold} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(digest.short().to_string());
        bar.finish_with_message(why);
    }
}
