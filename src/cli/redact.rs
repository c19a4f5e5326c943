//! `cantocap redact`: personal data out of text on stdin, line by line, so operators
//! can check what their redaction settings catch (and redact caption files).

use std::io::{self, BufRead, Write};

use anyhow::{Context, Result};

use cantocap::text::{
    Labels, RedactOptions, RedactionCounts, RedactionTypes, Redactor, Replacement,
};

const AFTER_HELP: &str = "Examples:
  echo '身份證 A123456(3)，電話九一二三 四五六七' | cantocap redact
                                 prints 身份證 [身份證號碼]，電話[電話號碼]
  cantocap redact --redact phone,email < notes.txt
  cantocap redact --mask-keep 4 --counts < meeting.srt > meeting-redacted.srt
  cantocap transcribe talk.wav --format txt | cantocap redact --english-labels

Redacted: HKID numbers with a valid check character; Hong Kong phone numbers (8 digits
starting 2-9, optionally after +852, 852 or (852)); email addresses; card numbers
(13-19 digits passing the Luhn check); bank account numbers (9-15 digits) near 戶口,
賬戶, 帳戶 or account. Digits may be ASCII, full-width or Chinese numerals (九一二三,
玖壹貳叁), grouped with spaces or hyphens. Dates, times, prices, counts and other
numbers are kept. Each line is redacted on its own and written as soon as it is read.";

/// The redaction flags shared by `transcribe`, `live`, `serve` and `redact`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RedactFlags {
    /// Kinds of personal data to redact, comma-separated: hkid, phone, email, card,
    /// account; or all, or none. Redaction is on by default (all kinds); `--redact
    /// none` turns it off. [default: all]
    #[arg(long = "redact", visible_alias = "types", value_name = "KINDS")]
    pub types: Option<RedactionTypes>,
    /// Write `*` for each digit but the last N (at most half of them) instead of a label,
    /// e.g. ****4567. Email addresses still get their label.
    #[arg(long, value_name = "N")]
    pub mask_keep: Option<usize>,
    /// Labels in English ([PHONE]) instead of Traditional Chinese ([電話號碼]).
    #[arg(long)]
    pub english_labels: bool,
}

impl RedactFlags {
    /// The library options these flags stand for.
    pub fn options(&self) -> RedactOptions {
        let mut options = RedactOptions::default();
        self.apply(&mut options);
        options
    }

    /// Puts the flags that were given into `options` (from a config file), leaving
    /// the rest as they are.
    pub fn apply(&self, options: &mut RedactOptions) {
        if let Some(types) = self.types {
            options.types = types;
        }
        if let Some(keep) = self.mask_keep {
            options.replacement = Replacement::MaskKeepLast(keep);
        }
        if self.english_labels {
            options.labels = Labels::english();
        }
    }
}

/// The options of `cantocap redact`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct RedactArgs {
    #[command(flatten)]
    pub flags: RedactFlags,
    /// When done, print how many items of each kind were redacted to stderr (never the
    /// items themselves), one `kind<TAB>count` line per kind.
    #[arg(long)]
    pub counts: bool,
}

/// Redacts stdin to stdout, line by line.
pub fn run(args: RedactArgs) -> Result<()> {
    let options = args.flags.options();
    let redactor = Redactor::new(options.clone());
    let mut counts = RedactionCounts::default();
    let result = redact_lines(&redactor, io::stdin().lock(), io::stdout().lock(), &mut counts);
    // `cantocap redact < big.txt | head` is not an error.
    if let Err(err) = result {
        let closed =
            err.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe);
        if !closed {
            return Err(err);
        }
    }
    if args.counts {
        let mut err = io::stderr().lock();
        for kind in options.types.iter() {
            writeln!(err, "{kind}\t{}", counts.get(kind))?;
        }
    }
    Ok(())
}

/// Redacts `input` to `output` one line at a time (line ends kept as they were),
/// flushing after each line so that piped captions pass straight through.
fn redact_lines(
    redactor: &Redactor,
    mut input: impl BufRead,
    mut output: impl Write,
    counts: &mut RedactionCounts,
) -> Result<()> {
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        if input.read_until(b'\n', &mut line).context("reading stdin")? == 0 {
            break;
        }
        let text = std::str::from_utf8(&line)
            .with_context(|| format!("stdin line {number} is not UTF-8 text"))?;
        let redacted = redactor.redact(text);
        *counts += redacted.counts;
        output.write_all(redacted.text.as_bytes())?;
        output.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Command};

    #[test]
    fn lines_keep_their_ends() {
        let redactor = Redactor::default();
        let mut counts = RedactionCounts::default();
        let mut out = Vec::new();
        let input = "9123 4567\r\n\nA123456(3)";
        redact_lines(&redactor, input.as_bytes(), &mut out, &mut counts).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "[電話號碼]\r\n\n[身份證號碼]");
        assert_eq!((counts.phone, counts.hkid), (1, 1));
    }

    #[test]
    fn flags_become_options() {
        let cmd = RedactArgs::augment_args(Command::new("redact"));
        let matches =
            cmd.try_get_matches_from(["redact", "--types", "phone", "--mask-keep", "4"]).unwrap();
        let args = <RedactArgs as clap::FromArgMatches>::from_arg_matches(&matches).unwrap();
        let options = args.flags.options();
        assert_eq!(options.types, "phone".parse().unwrap());
        assert_eq!(options.replacement, Replacement::MaskKeepLast(4));
        let help = RedactArgs::augment_args(Command::new("redact")).render_long_help().to_string();
        assert!(help.contains("Examples:") && help.contains("[default: all]"), "{help}");
        assert!(help.contains("--redact none") && help.contains("--types"), "{help}");
    }

    #[test]
    fn flags_default_to_everything_and_override_only_what_is_given() {
        assert_eq!(RedactFlags::default().options(), RedactOptions::default());
        let cmd = RedactFlags::augment_args(Command::new("x"));
        let matches = cmd.try_get_matches_from(["x", "--redact", "none"]).unwrap();
        let flags = <RedactFlags as clap::FromArgMatches>::from_arg_matches(&matches).unwrap();
        assert_eq!(flags.options().types, RedactionTypes::NONE);
        let mut from_file =
            RedactOptions { replacement: Replacement::MaskKeepLast(2), ..RedactOptions::default() };
        let english = RedactFlags { english_labels: true, ..RedactFlags::default() };
        english.apply(&mut from_file);
        assert_eq!(from_file.replacement, Replacement::MaskKeepLast(2));
        assert_eq!(from_file.labels, Labels::english());
        let bad = RedactFlags::augment_args(Command::new("x"))
            .try_get_matches_from(["x", "--redact", "passport"]);
        assert!(bad.unwrap_err().to_string().contains("passport"));
    }
}
