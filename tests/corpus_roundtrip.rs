//! Round trips on the real default corpus (`just corpus` writes it into corpora/):
//! for every file, decode(encode(file)) written as MIDI and read back encodes to the
//! same tokens, with the plain settings and with the default dataset's settings.
//! Also generated scores (property test).

mod common;

use museformer::data::{normalize::normalize, prepare::list_midi_files, DatasetConfig};
use museformer::midi::{self, Note, Score, Tempo, TimeSignature, Track};
use museformer::tokens::{self, EncodeOptions, Token, Vocab};
use proptest::prelude::*;
use rayon::prelude::*;

fn round_trip(tokens_in: &[Token], opts: &EncodeOptions) -> Result<Vec<Token>, String> {
    let vocab = Vocab::new(opts.pos_per_beat);
    let decoded = tokens::decode(tokens_in, &vocab).map_err(|e| e.to_string())?;
    let reread = midi::read_bytes(&midi::to_bytes(&decoded)).map_err(|e| e.to_string())?;
    tokens::encode(&reread, opts).map_err(|e| e.to_string())
}

#[test]
fn every_default_corpus_file_round_trips() {
    let root = common::root();
    let cfg = DatasetConfig::load(&root.join("experiments/data/default.yaml")).unwrap();
    let corpus = root.join(&cfg.midi_dir);
    assert!(
        corpus.is_dir(),
        "{} is missing: run `just corpus` first",
        corpus.display()
    );
    let files = list_midi_files(&corpus).unwrap();
    assert!(
        files.len() >= 300,
        "the default corpus has only {} files",
        files.len()
    );
    let plain = EncodeOptions::default();
    let failures: Vec<String> = files
        .par_iter()
        .flat_map(|f| {
            let mut bad = Vec::new();
            let score = match midi::read_file(f) {
                Ok(s) => s,
                Err(e) => return vec![format!("{}: {e}", f.display())],
            };
            if let Ok(t) = tokens::encode(&score, &plain) {
                match round_trip(&t, &plain) {
                    Ok(again) if again == t => {}
                    Ok(_) => bad.push(format!("{}: plain settings changed tokens", f.display())),
                    Err(e) => bad.push(format!("{}: {e}", f.display())),
                }
            }
            if let Ok(n) = normalize(&score, &cfg.normalize) {
                let t = tokens::encode(&n, &cfg.encoding).unwrap();
                // Key normalization is idempotent on the decoded piece (already in C / Am).
                match round_trip(&t, &cfg.encoding) {
                    Ok(again) if again == t => {}
                    Ok(_) => bad.push(format!("{}: dataset settings changed tokens", f.display())),
                    Err(e) => bad.push(format!("{}: {e}", f.display())),
                }
            }
            bad
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} files fail:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// Random pieces: 1-3 tracks (one may be drums), notes on a 1/16 grid, tempo and
/// time-signature changes at bar starts.
fn arb_score() -> impl Strategy<Value = Score> {
    let note = (0u64..64, 1u64..32, 21u8..109, 1u8..128);
    let track = (0u8..128, any::<bool>(), prop::collection::vec(note, 1..30));
    (
        prop::collection::vec(track, 1..4),
        40u32..200,
        prop::sample::select(vec![(4u32, 4u32), (3, 4), (6, 8), (2, 2)]),
    )
        .prop_map(|(tracks, bpm, ts)| {
            let tpb = 480u64;
            let step = tpb / 4;
            let tracks = tracks
                .into_iter()
                .map(|(program, is_drum, notes)| {
                    // Same-pitch notes may overlap and nest: the writer must keep them apart.
                    let mut notes: Vec<Note> = notes
                        .into_iter()
                        .map(|(on, len, pitch, velocity)| Note {
                            start: on * step,
                            end: (on + len) * step,
                            pitch,
                            velocity,
                        })
                        .collect();
                    notes.sort();
                    Track {
                        name: String::new(),
                        program,
                        is_drum,
                        notes,
                    }
                })
                .collect();
            Score {
                ticks_per_beat: tpb as u32,
                tempos: vec![Tempo {
                    tick: 0,
                    micros_per_quarter: 60_000_000 / bpm,
                }],
                time_signatures: vec![TimeSignature {
                    tick: 0,
                    numerator: ts.0,
                    denominator: ts.1,
                }],
                key_signatures: vec![],
                tracks,
            }
        })
}

proptest! {
    #[test]
    fn generated_scores_round_trip(score in arb_score(), ignore_ts in any::<bool>(), r in prop::sample::select(vec![12u32, 16])) {
        // Without time-signature tokens the decoder assumes 4/4.
        let ignore_ts = ignore_ts && score.time_signatures[0].numerator == 4 && score.time_signatures[0].denominator == 4;
        let opts = EncodeOptions { ignore_ts, pos_per_beat: r, ..EncodeOptions::default() };
        let t = tokens::encode(&score, &opts).unwrap();
        prop_assert_eq!(round_trip(&t, &opts).unwrap(), t);
    }
}
