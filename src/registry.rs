//! The model registry: the one table of the models there are ([`MODELS`]), what an
//! experiment's `model:` map holds ([`ModelConfig`]), and [`build`], which makes the
//! model a configuration names.
//!
//! A `model:` map holds the sizes every model reads ([`ModelSizes`]: `layers`,
//! `hidden`, ...), the `kind`, and the section of that kind only, under the kind's
//! name: `museformer: {layout: ...}`, `longformer: {window: 512}`. A section left
//! out takes its defaults. A section of another kind, or a section's key written at
//! the top of `model:` (`model: {kind: museformer, window: 64}`), is an error naming
//! the key, and its line when read from a file. Written out, the map holds exactly
//! what the chosen model reads, its section's defaults filled in: that is what the
//! run-folder hash covers, so a default of one model never renames another's runs.
//!
//! The registry sits above `model` and `baselines`: neither knows the other's
//! settings, nor experiment files.

use crate::baselines::linear_transformer::{self, LinearTransformerConfig};
use crate::baselines::longformer::{self, LongformerConfig};
use crate::baselines::music_transformer::{self, MusicTransformerConfig};
use crate::baselines::transformer_xl::{TransformerXl, TransformerXlConfig};
use crate::model::museformer::{Museformer, MuseformerConfig};
use crate::model::transformer::{self, TransformerConfig};
use crate::model::uniform::Uniform;
use crate::model::{Init, LanguageModel, ModelSizes};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::Cell;
use std::fmt;
use tch::nn;

/// A model kind: the value of `model.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// Full attention.
    Transformer,
    /// Fine- and coarse-grained attention.
    Museformer,
    /// Relative attention.
    MusicTransformer,
    /// Segment recurrence with memory.
    TransformerXl,
    /// Sliding-window attention.
    Longformer,
    /// Kernel-based linear attention.
    LinearTransformer,
    /// Uniform predictions.
    Uniform,
}

/// One row of the registry.
#[derive(Debug)]
pub struct Registered {
    /// The kind.
    pub kind: ModelKind,
    /// Its name: the value of `model.kind`, and the key of its section.
    pub name: &'static str,
    /// What it is, for listings and messages.
    pub about: &'static str,
}

/// Every model the registry builds, in the order listings show them.
pub const MODELS: [Registered; 7] = [
    Registered {
        kind: ModelKind::Transformer,
        name: "transformer",
        about: "full attention, Museformer's full-attention counterpart",
    },
    Registered {
        kind: ModelKind::Museformer,
        name: "museformer",
        about: "fine- and coarse-grained attention (FC-Attention)",
    },
    Registered {
        kind: ModelKind::MusicTransformer,
        name: "music_transformer",
        about: "relative attention (Huang et al., 2018)",
    },
    Registered {
        kind: ModelKind::TransformerXl,
        name: "transformer_xl",
        about: "segment recurrence with a memory (Dai et al., 2019)",
    },
    Registered {
        kind: ModelKind::Longformer,
        name: "longformer",
        about: "sliding-window attention (Beltagy et al., 2020)",
    },
    Registered {
        kind: ModelKind::LinearTransformer,
        name: "linear_transformer",
        about: "kernel-based linear attention (Katharopoulos et al., 2020)",
    },
    Registered {
        kind: ModelKind::Uniform,
        name: "uniform",
        about: "every token equally likely, a reference for the evaluator",
    },
];

impl ModelKind {
    fn registered(self) -> &'static Registered {
        MODELS
            .iter()
            .find(|m| m.kind == self)
            .expect("every kind is in MODELS")
    }

    /// Its name in experiment files.
    pub fn name(self) -> &'static str {
        self.registered().name
    }

    /// What it is.
    pub fn about(self) -> &'static str {
        self.registered().about
    }

    /// The kind of a name.
    pub fn from_name(name: &str) -> Option<ModelKind> {
        MODELS.iter().find(|m| m.name == name).map(|m| m.kind)
    }

    /// Every kind's name, comma-separated.
    pub fn names() -> String {
        MODELS.map(|m| m.name).join(", ")
    }

    /// The key of its section in `model:`, `None` for a kind without settings of
    /// its own (`uniform`).
    pub fn section_key(self) -> Option<&'static str> {
        (!matches!(ModelSection::defaults(self), ModelSection::Uniform)).then(|| self.name())
    }

    /// The kind whose section `key` is.
    fn of_section(key: &str) -> Option<ModelKind> {
        ModelKind::from_name(key).filter(|k| k.section_key().is_some())
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ModelKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<ModelKind> {
        ModelKind::from_name(s).ok_or_else(|| {
            anyhow::anyhow!("unknown model kind `{s}` (known: {})", ModelKind::names())
        })
    }
}

impl Serialize for ModelKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ModelKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ModelKind, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = ModelKind;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a model kind ({})", ModelKind::names())
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<ModelKind, E> {
                name.parse().map_err(|e| E::custom(format!("{e:#}")))
            }
        }
        d.deserialize_str(Name)
    }
}

/// The chosen kind with its own settings: the section of `model:` it reads.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSection {
    /// `transformer: {attention: ...}`.
    Transformer(TransformerConfig),
    /// `museformer: {layout: ...}`.
    Museformer(MuseformerConfig),
    /// `music_transformer: {max_relative: ...}`.
    MusicTransformer(MusicTransformerConfig),
    /// `transformer_xl: {segment: ..., memory: ...}`.
    TransformerXl(TransformerXlConfig),
    /// `longformer: {window: ...}`.
    Longformer(LongformerConfig),
    /// `linear_transformer: {chunk: ...}`.
    LinearTransformer(LinearTransformerConfig),
    /// No settings.
    Uniform,
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection::defaults(ModelKind::Transformer)
    }
}

impl ModelSection {
    /// The defaults of a kind.
    pub fn defaults(kind: ModelKind) -> ModelSection {
        match kind {
            ModelKind::Transformer => ModelSection::Transformer(Default::default()),
            ModelKind::Museformer => ModelSection::Museformer(Default::default()),
            ModelKind::MusicTransformer => ModelSection::MusicTransformer(Default::default()),
            ModelKind::TransformerXl => ModelSection::TransformerXl(Default::default()),
            ModelKind::Longformer => ModelSection::Longformer(Default::default()),
            ModelKind::LinearTransformer => ModelSection::LinearTransformer(Default::default()),
            ModelKind::Uniform => ModelSection::Uniform,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> ModelKind {
        match self {
            ModelSection::Transformer(_) => ModelKind::Transformer,
            ModelSection::Museformer(_) => ModelKind::Museformer,
            ModelSection::MusicTransformer(_) => ModelKind::MusicTransformer,
            ModelSection::TransformerXl(_) => ModelKind::TransformerXl,
            ModelSection::Longformer(_) => ModelKind::Longformer,
            ModelSection::LinearTransformer(_) => ModelKind::LinearTransformer,
            ModelSection::Uniform => ModelKind::Uniform,
        }
    }

    /// Reads the section of `kind` (which has one).
    fn read<'de, D: Deserializer<'de>>(kind: ModelKind, d: D) -> Result<ModelSection, D::Error> {
        Ok(match kind {
            ModelKind::Transformer => ModelSection::Transformer(Deserialize::deserialize(d)?),
            ModelKind::Museformer => ModelSection::Museformer(Deserialize::deserialize(d)?),
            ModelKind::MusicTransformer => {
                ModelSection::MusicTransformer(Deserialize::deserialize(d)?)
            }
            ModelKind::TransformerXl => ModelSection::TransformerXl(Deserialize::deserialize(d)?),
            ModelKind::Longformer => ModelSection::Longformer(Deserialize::deserialize(d)?),
            ModelKind::LinearTransformer => {
                ModelSection::LinearTransformer(Deserialize::deserialize(d)?)
            }
            ModelKind::Uniform => {
                return Err(de::Error::custom("kind `uniform` has no settings"));
            }
        })
    }
}

/// Written as a map of one entry, the section under its kind's name (none for
/// `uniform`).
impl Serialize for ModelSection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        let name = self.kind().name();
        match self {
            ModelSection::Transformer(c) => map.serialize_entry(name, c)?,
            ModelSection::Museformer(c) => map.serialize_entry(name, c)?,
            ModelSection::MusicTransformer(c) => map.serialize_entry(name, c)?,
            ModelSection::TransformerXl(c) => map.serialize_entry(name, c)?,
            ModelSection::Longformer(c) => map.serialize_entry(name, c)?,
            ModelSection::LinearTransformer(c) => map.serialize_entry(name, c)?,
            ModelSection::Uniform => {}
        }
        map.end()
    }
}

/// An experiment's `model:` map: the shared sizes and the chosen kind's section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelConfig {
    /// What every model reads (the top of `model:`).
    pub sizes: ModelSizes,
    /// The kind and its own settings.
    pub section: ModelSection,
}

impl ModelConfig {
    /// The paper's sizes and the defaults of `kind`.
    pub fn of(kind: ModelKind) -> ModelConfig {
        ModelConfig {
            sizes: ModelSizes::default(),
            section: ModelSection::defaults(kind),
        }
    }

    /// The model's kind.
    pub fn kind(&self) -> ModelKind {
        self.section.kind()
    }
}

/// Builds the model a configuration names, its parameters under `path`.
pub fn build(
    path: &nn::Path,
    cfg: &ModelConfig,
    vocab_size: i64,
) -> anyhow::Result<Box<dyn LanguageModel>> {
    let init = Init {
        path,
        sizes: &cfg.sizes,
        vocab_size,
    };
    Ok(match &cfg.section {
        ModelSection::Transformer(c) => Box::new(transformer::new(init, c)?),
        ModelSection::Museformer(c) => Box::new(Museformer::new(init, c)?),
        ModelSection::MusicTransformer(c) => Box::new(music_transformer::new(init, c)?),
        ModelSection::TransformerXl(c) => Box::new(TransformerXl::new(init, c)?),
        ModelSection::Longformer(c) => Box::new(longformer::new(init, c)?),
        ModelSection::LinearTransformer(c) => Box::new(linear_transformer::new(init, c)?),
        ModelSection::Uniform => Box::new(Uniform::new(vocab_size, path.device())),
    })
}

/// The keys of a value that serializes as a map.
fn keys_of(value: &impl Serialize) -> Vec<String> {
    match serde_yaml::to_value(value) {
        Ok(serde_yaml::Value::Mapping(m)) => m
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The keys of the shared sizes (found once, from their serialized defaults).
fn size_keys() -> &'static [String] {
    static KEYS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| keys_of(&ModelSizes::default()))
}

/// The keys inside the section of `kind`.
fn section_keys(kind: ModelKind) -> Vec<String> {
    match serde_yaml::to_value(ModelSection::defaults(kind)) {
        Ok(serde_yaml::Value::Mapping(m)) => m.values().flat_map(keys_of).collect(),
        _ => Vec::new(),
    }
}

/// Written as `kind`, the shared sizes, then the section.
impl Serialize for ModelConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Written<'a> {
            kind: ModelKind,
            #[serde(flatten)]
            sizes: &'a ModelSizes,
            #[serde(flatten)]
            section: &'a ModelSection,
        }
        Written {
            kind: self.kind(),
            sizes: &self.sizes,
            section: &self.section,
        }
        .serialize(s)
    }
}

thread_local! {
    /// The kind a `model:` map that names none is read as (see [`read_as`]).
    static READING_AS: Cell<Option<ModelKind>> = const { Cell::new(None) };
}

/// Runs `read` with every `model:` map that names no `kind` read as of `kind`.
///
/// An experiment file is checked on its own, so that an error names the file and
/// the line; but a file that adjusts the model of the base it `extends:`
/// (`museformer: {layout: ...}` over a base of `kind: museformer`) names no kind,
/// and its section belongs to the kind it inherits. Serde gives a `Deserialize`
/// implementation no arguments, hence this setting of the current thread, restored
/// when `read` returns.
pub fn read_as<T>(kind: ModelKind, read: impl FnOnce() -> T) -> T {
    struct Restore(Option<ModelKind>);
    impl Drop for Restore {
        fn drop(&mut self) {
            READING_AS.set(self.0);
        }
    }
    let _restore = Restore(READING_AS.replace(Some(kind)));
    read()
}

/// The kind a `model:` YAML map names, if it names a valid one.
pub fn kind_in(model: &serde_yaml::Value) -> Option<ModelKind> {
    model
        .get("kind")
        .and_then(|k| k.as_str())
        .and_then(ModelKind::from_name)
}

/// Removes from a `model:` YAML map the sections of every kind but `kind`: what is
/// left of a base's model when a file that extends it names another kind.
pub fn drop_other_sections(model: &mut serde_yaml::Mapping, kind: ModelKind) {
    model.retain(|key, _| {
        key.as_str()
            .and_then(ModelKind::of_section)
            .is_none_or(|k| k == kind)
    });
}

/// A key of a `model:` map.
enum Key {
    Kind,
    Size(String),
    Section(ModelKind),
}

/// Reads a key of a `model:` map and refuses what does not belong there, so that
/// the error carries the key's position. `kind`: the map's kind if known by now.
struct KeySeed {
    kind: Option<ModelKind>,
}

impl KeySeed {
    fn classify(&self, key: &str) -> Result<Key, String> {
        if key == "kind" {
            return Ok(Key::Kind);
        }
        let sizes = size_keys();
        if sizes.iter().any(|s| s == key) {
            return Ok(Key::Size(key.to_string()));
        }
        if let Some(section) = ModelKind::of_section(key) {
            return match self.kind {
                Some(kind) if kind != section => Err(foreign_section(section, kind)),
                _ => Ok(Key::Section(section)),
            };
        }
        let owners: Vec<ModelKind> = MODELS
            .iter()
            .map(|m| m.kind)
            .filter(|&k| section_keys(k).iter().any(|s| s == key))
            .collect();
        if let Some(&owner) = owners.first() {
            let of: Vec<String> = owners.iter().map(|k| format!("`{k}`")).collect();
            return Err(format!(
                "unknown key `{key}` in `model:`: it is a setting of {}, written in that \
                 kind's section (`{owner}: {{{key}: ...}}` with `kind: {owner}`)",
                of.join(" and ")
            ));
        }
        let sections: Vec<&str> = MODELS.iter().filter_map(|m| m.kind.section_key()).collect();
        Err(format!(
            "unknown key `{key}` in `model:`, expected `kind`, a shared size ({}) or the \
             section of the model's kind ({})",
            sizes.join(", "),
            sections.join(", ")
        ))
    }
}

fn foreign_section(section: ModelKind, kind: ModelKind) -> String {
    format!(
        "`{section}` is the section of kind `{section}`, but the model's kind is `{kind}` \
         (`model:` holds the shared sizes and the section of its own kind only)"
    )
}

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key of `model:`")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        self.classify(key).map_err(E::custom)
    }
}

/// What a `model:` map holds besides the sizes, gathered while the sizes are read.
struct Others {
    /// The kind the map names.
    kind: Option<ModelKind>,
    /// The kind of a map that names none (see [`read_as`]).
    inherited: Option<ModelKind>,
    sections: Vec<ModelSection>,
}

impl Others {
    /// The kind as far as known.
    fn kind(&self) -> Option<ModelKind> {
        self.kind.or(self.inherited)
    }
}

/// The entries of a `model:` map that are shared sizes, for [`ModelSizes`]'s own
/// `Deserialize` (defaults, types, positions of errors); `kind` and the section are
/// taken aside into [`Others`] on the way.
struct SizesOnly<'o, A> {
    map: A,
    others: &'o mut Others,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for SizesOnly<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let key = KeySeed {
                kind: self.others.kind(),
            };
            match self.map.next_key_seed(key)? {
                None => return Ok(None),
                Some(Key::Kind) => self.others.kind = Some(self.map.next_value()?),
                Some(Key::Section(kind)) => {
                    let section = self.map.next_value_seed(SectionSeed(kind))?;
                    self.others.sections.push(section);
                }
                Some(Key::Size(name)) => {
                    return seed.deserialize(name.into_deserializer()).map(Some)
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// Reads the section of a kind.
struct SectionSeed(ModelKind);

impl<'de> DeserializeSeed<'de> for SectionSeed {
    type Value = ModelSection;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ModelSection, D::Error> {
        ModelSection::read(self.0, d)
    }
}

struct ModelVisitor;

impl<'de> Visitor<'de> for ModelVisitor {
    type Value = ModelConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a `model:` map (kind, shared sizes, the kind's section)")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ModelConfig, A::Error> {
        let mut others = Others {
            kind: None,
            inherited: READING_AS.get(),
            sections: Vec::new(),
        };
        let sizes = ModelSizes::deserialize(de::value::MapAccessDeserializer::new(SizesOnly {
            map,
            others: &mut others,
        }))?;
        // A section met before a `kind` that came later is checked here.
        let kind = others.kind().unwrap_or(ModelKind::Transformer);
        let mut section = None;
        for s in others.sections {
            if s.kind() != kind {
                return Err(de::Error::custom(foreign_section(s.kind(), kind)));
            }
            if section.replace(s).is_some() {
                return Err(de::Error::custom(format!("`{kind}` is given twice")));
            }
        }
        Ok(ModelConfig {
            sizes,
            section: section.unwrap_or_else(|| ModelSection::defaults(kind)),
        })
    }
}

/// Reads `kind` (default `transformer`), the shared sizes (defaults: the paper's)
/// and the kind's section (default: its defaults); refuses anything else.
impl<'de> Deserialize<'de> for ModelConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ModelConfig, D::Error> {
        d.deserialize_map(ModelVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layout::{Coarse, LayoutConfig};
    use std::collections::BTreeSet;

    fn read(text: &str) -> Result<ModelConfig, String> {
        serde_yaml::from_str::<ModelConfig>(text).map_err(|e| e.to_string())
    }

    /// Table 1's `params`: the trainable tensors of transformer-small.yaml, counted
    /// by hand from its sizes (2 layers, width 64, FFN 128, embeddings 64 + 16 + 16,
    /// sinusoidal bar and beat embeddings: no table).
    #[test]
    fn the_parameter_count_is_the_sum_of_the_trainable_tensors() {
        let cfg = crate::config::ExperimentConfig::load(
            std::path::Path::new("experiments/transformer-small.yaml"),
            &[],
        )
        .unwrap()
        .model;
        let (h, f, v) = (64u64, 128u64, 101u64);
        let linear = |i: u64, o: u64| i * o + o;
        let embed = v * 64 + linear(64 + 16 + 16, h);
        let layer = 2 * (2 * h) + linear(h, 3 * h) + linear(h, h) + linear(h, f) + linear(f, h);
        let expected = embed + 2 * layer + 2 * h + linear(h, v);
        assert_eq!(expected, 129 * v + 73_280);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        build(&vs.root(), &cfg, v as i64).unwrap();
        assert_eq!(crate::model::trainable_parameters(&vs), expected);
        // Frozen tensors are not counted.
        let frozen = vs.root().zeros_no_train("frozen", &[1000]);
        assert_eq!(frozen.numel(), 1000);
        assert_eq!(crate::model::trainable_parameters(&vs), expected);
        // Sizes change the count: one more layer adds one layer's parameters.
        let mut deeper = cfg.clone();
        deeper.sizes.layers = 3;
        let vs3 = nn::VarStore::new(tch::Device::Cpu);
        build(&vs3.root(), &deeper, v as i64).unwrap();
        assert_eq!(crate::model::trainable_parameters(&vs3), expected + layer);
    }

    #[test]
    fn every_kind_is_registered_once_and_builds() {
        let names: BTreeSet<&str> = MODELS.iter().map(|m| m.name).collect();
        assert_eq!(names.len(), MODELS.len());
        for m in &MODELS {
            assert_eq!(ModelKind::from_name(m.name), Some(m.kind));
            assert_eq!(m.kind.to_string(), m.name);
            assert_eq!(ModelSection::defaults(m.kind).kind(), m.kind);
            assert_eq!(m.kind.section_key().is_none(), m.kind == ModelKind::Uniform);
            let cfg = ModelConfig {
                sizes: crate::model::testing::small(),
                section: ModelSection::defaults(m.kind),
            };
            let vs = nn::VarStore::new(tch::Device::Cpu);
            build(&vs.root(), &cfg, 50).unwrap_or_else(|e| panic!("{}: {e:#}", m.name));
        }
        let err = "transformr".parse::<ModelKind>().unwrap_err().to_string();
        assert!(
            err.contains("transformr") && err.contains("linear_transformer"),
            "{err}"
        );
    }

    #[test]
    fn written_out_a_model_holds_what_it_reads_and_reads_back() {
        for m in &MODELS {
            let mut cfg = ModelConfig::of(m.kind);
            cfg.sizes.hidden = 48;
            let value = serde_yaml::to_value(&cfg).unwrap();
            let keys: BTreeSet<String> = keys_of(&value).into_iter().collect();
            let mut expected: BTreeSet<String> = size_keys().iter().cloned().collect();
            expected.insert("kind".into());
            expected.extend(m.kind.section_key().map(String::from));
            assert_eq!(keys, expected, "{}", m.name);
            assert_eq!(serde_yaml::from_value::<ModelConfig>(value).unwrap(), cfg);
        }
    }

    #[test]
    fn a_section_is_read_with_its_defaults() {
        let cfg = read("kind: museformer\nlayers: 2\nmuseformer:\n  layout:\n    coarse: none\n")
            .unwrap();
        assert_eq!(cfg.sizes.layers, 2);
        assert_eq!(
            cfg.section,
            ModelSection::Museformer(MuseformerConfig {
                layout: LayoutConfig {
                    coarse: Coarse::None,
                    ..LayoutConfig::default()
                },
                ..MuseformerConfig::default()
            })
        );
        // Left out: the defaults; no kind: the Transformer.
        assert_eq!(
            read("kind: longformer").unwrap(),
            ModelConfig::of(ModelKind::Longformer)
        );
        assert_eq!(read("layers: 4").unwrap(), ModelConfig::default());
        assert_eq!(ModelConfig::default().kind(), ModelKind::Transformer);
    }

    #[test]
    fn what_does_not_belong_to_the_kind_is_refused_at_its_line() {
        let err = read("kind: museformer\nlayers: 2\nlongformer:\n  window: 3\n").unwrap_err();
        assert!(
            err.contains("`longformer` is the section") && err.contains("line 3"),
            "{err}"
        );
        let err = read("kind: museformer\nwindow: 64\n").unwrap_err();
        assert!(
            err.contains("`window`") && err.contains("longformer") && err.contains("line 2"),
            "{err}"
        );
        let err = read("layers: 2\nlayuot: {}\n").unwrap_err();
        assert!(err.contains("layuot") && err.contains("line 2"), "{err}");
        let err = read("kind: museformer\nmuseformer:\n  layout:\n    fine: [1]\n").unwrap_err();
        assert!(err.contains("fine") && err.contains("line 4"), "{err}");
        let err = read("kind: museformr\n").unwrap_err();
        assert!(
            err.contains("museformr") && err.contains("museformer"),
            "{err}"
        );
        // A section before the kind that rules it out.
        let err = read("longformer: {window: 3}\nkind: museformer\n").unwrap_err();
        assert!(err.contains("`longformer` is the section"), "{err}");
        // No kind: the Transformer's.
        let err = read("longformer: {window: 3}\n").unwrap_err();
        assert!(err.contains("kind is `transformer`"), "{err}");
    }

    #[test]
    fn a_map_without_kind_can_be_read_as_an_inherited_kind() {
        let text = "layers: 2\nlongformer: {window: 3}\n";
        let cfg = read_as(ModelKind::Longformer, || read(text)).unwrap();
        assert_eq!(
            cfg.section,
            ModelSection::Longformer(LongformerConfig { window: 3 })
        );
        // Restored afterwards, and a kind of its own wins.
        assert!(read(text).is_err());
        let own = "kind: transformer_xl\ntransformer_xl: {segment: 8}\n";
        assert!(read_as(ModelKind::Longformer, || read(own)).is_ok());
        let err = read_as(ModelKind::Museformer, || read(text)).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn changing_kind_drops_the_other_sections() {
        let mut model: serde_yaml::Mapping =
            serde_yaml::from_str("kind: museformer\nlayers: 2\nmuseformer: {}\nuniform: 1\n")
                .unwrap();
        drop_other_sections(&mut model, ModelKind::Transformer);
        let keys: Vec<&str> = model.keys().filter_map(|k| k.as_str()).collect();
        assert_eq!(keys, ["kind", "layers", "uniform"]);
        assert_eq!(
            kind_in(&serde_yaml::Value::Mapping(model)),
            Some(ModelKind::Museformer)
        );
    }
}
