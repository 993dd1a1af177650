//! What the option table is made of: an option's [`Spec`] (type and
//! bounds as a [`Kind`], default, help, and the rules around it), the
//! sections' [`SectionSpec`]s, the [`OptionValue`] trait through which the
//! loader and the renderer reach a field by option name, and the
//! [`options_section!`] macro that declares a section's struct together
//! with its table (`options.rs` uses it).

use std::net::SocketAddr;
use std::path::PathBuf;

use super::value;
use super::{Config, Secret};

/// How an option's text is read: its type and, for numbers, its bounds.
/// An empty value means the default for every kind but the strings
/// (`Str`, `Name`, `Secret`) and a `Path` whose default is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// oslo booleans: true/false, yes/no, on/off, 1/0.
    Bool,
    /// A whole number in `min..=max`.
    Int {
        /// Smallest value allowed.
        min: u64,
        /// Largest value allowed.
        max: u64,
    },
    /// A TCP port, 1-65535.
    Port,
    /// An IP address or a host name.
    Host,
    /// A comma list of `host:port`, at least one.
    HostPorts,
    /// An `IP:port` to listen on.
    SocketAddr,
    /// A file or directory. When the default is a path an empty value is
    /// refused (a line that lost its value); otherwise empty means unset.
    Path,
    /// A string, possibly empty (for an `Option<String>` field, empty is unset).
    Str,
    /// A string that must not be empty (a name Kafka or InfluxDB needs).
    Name,
    /// A secret string: masked in every output.
    Secret,
    /// Accepted for compatibility and never read (not even substituted).
    Ignored,
}

/// An option's text typed by its [`Kind`], before it is stored in a field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parsed {
    /// An empty value where that means the default: the field keeps it.
    Unset,
    /// [`Kind::Bool`].
    Bool(bool),
    /// [`Kind::Int`].
    Int(u64),
    /// [`Kind::Port`].
    Port(u16),
    /// [`Kind::Host`], [`Kind::Str`], [`Kind::Name`].
    Text(String),
    /// [`Kind::HostPorts`].
    List(Vec<String>),
    /// [`Kind::SocketAddr`].
    Addr(SocketAddr),
    /// [`Kind::Path`].
    Path(PathBuf),
    /// [`Kind::Secret`].
    Secret(Secret),
}

impl Kind {
    /// Types `text` (after `$` substitution); `default` is the option's
    /// default text, named when an empty path is refused.
    pub(crate) fn parse(self, text: &str, default: &str) -> Result<Parsed, String> {
        let empty = text.trim().is_empty();
        let typed = !matches!(
            self,
            Kind::Str | Kind::Name | Kind::Secret | Kind::Path | Kind::Ignored
        );
        if typed && empty {
            return Ok(Parsed::Unset);
        }
        Ok(match self {
            Kind::Bool => Parsed::Bool(value::boolean(text)?),
            Kind::Int { min, max } => Parsed::Int(value::integer(text, min, max)?),
            Kind::Port => Parsed::Port(value::port(text)?),
            Kind::Host => Parsed::Text(value::host(text)?),
            Kind::HostPorts => Parsed::List(value::host_port_list(text)?),
            Kind::SocketAddr => Parsed::Addr(value::socket_addr(text)?),
            Kind::Path if empty && default.is_empty() => Parsed::Unset,
            Kind::Path if empty => {
                return Err(format!(
                    "must not be empty (remove the line to use the default, {default})"
                ))
            }
            Kind::Path => Parsed::Path(PathBuf::from(text.trim())),
            Kind::Str => Parsed::Text(text.to_string()),
            Kind::Name => Parsed::Text(value::non_empty(text)?),
            Kind::Secret => Parsed::Secret(Secret::new(text)),
            Kind::Ignored => Parsed::Unset,
        })
    }
}

/// An option's default as written in a file: one text, or one per topic
/// section (`[kafka_metrics]`, `[kafka_alarm_history]`, `[kafka_events]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Defaults {
    /// The same in every section that has the option.
    All(&'static str),
    /// Per topic section, in [`super::options::TOPIC_SECTIONS`] order.
    Topics([&'static str; 3]),
}

impl Defaults {
    /// The default text in the topic section `topic` (ignored by `All`).
    pub(crate) fn text(self, topic: usize) -> &'static str {
        match self {
            Defaults::All(text) => text,
            Defaults::Topics(texts) => texts.get(topic).copied().unwrap_or(""),
        }
    }
}

/// What the loader says about a value besides typing it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Check {
    /// Nothing.
    None,
    /// A warning when set to a non-empty value; the text follows `[section] option`.
    WarnWhenSet(&'static str),
    /// A warning when set to true; the text follows `[section] option`.
    WarnWhenTrue(&'static str),
    /// Anything else: `Err(reason)` refuses the value, `Ok(Some(text))`
    /// warns with the text that follows `[section] option`.
    Custom(fn(&str) -> Result<Option<String>, String>),
}

impl Check {
    /// Applies the check to a value's text (substituted; for
    /// [`Kind::Ignored`], as written).
    pub(crate) fn apply(self, text: &str) -> Result<Option<String>, String> {
        Ok(match self {
            Check::None => None,
            Check::WarnWhenSet(warning) => (!text.trim().is_empty()).then(|| warning.to_string()),
            Check::WarnWhenTrue(warning) => {
                (value::boolean(text) == Ok(true)).then(|| warning.to_string())
            }
            Check::Custom(check) => return check(text),
        })
    }
}

/// Everything the table says about an option besides its name and help.
/// Built with [`Spec::of`] and the `const` methods, so that a table row
/// reads `int(1, 64).default("2")`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    /// Type and bounds.
    pub kind: Kind,
    /// Default text ("" when unset).
    pub default: Defaults,
    /// A `[kafka]` option that the topic sections inherit (reference `kafka_common`).
    pub kafka_common: bool,
    /// Ours, not the reference persister's (README lists them).
    pub ours: bool,
    /// Accepted for compatibility but without effect (README says so).
    pub unused: bool,
    /// Refused below the value of this option of the same section.
    pub not_below: Option<&'static str>,
    /// Warnings and refusals beyond the type.
    pub check: Check,
}

impl Spec {
    /// An option of `kind` with an empty default.
    pub(crate) const fn of(kind: Kind) -> Spec {
        Spec {
            kind,
            default: Defaults::All(""),
            kafka_common: false,
            ours: false,
            unused: false,
            not_below: None,
            check: Check::None,
        }
    }
    /// With this default text.
    pub(crate) const fn default(mut self, text: &'static str) -> Spec {
        self.default = Defaults::All(text);
        self
    }
    /// With a default per topic section.
    pub(crate) const fn per_topic(mut self, texts: [&'static str; 3]) -> Spec {
        self.default = Defaults::Topics(texts);
        self
    }
    /// A `[kafka]` option the topic sections inherit.
    pub(crate) const fn kafka_common(mut self) -> Spec {
        self.kafka_common = true;
        self
    }
    /// Ours, not the reference's.
    pub(crate) const fn ours(mut self) -> Spec {
        self.ours = true;
        self
    }
    /// Accepted for compatibility, without effect.
    pub(crate) const fn unused(mut self) -> Spec {
        self.unused = true;
        self
    }
    /// Refused below `other`'s value.
    pub(crate) const fn not_below(mut self, other: &'static str) -> Spec {
        self.not_below = Some(other);
        self
    }
    /// With this check.
    pub(crate) const fn check(mut self, check: Check) -> Spec {
        self.check = check;
        self
    }
}

/// `Spec::of(Kind::Int { min, max })`.
pub(crate) const fn int(min: u64, max: u64) -> Spec {
    Spec::of(Kind::Int { min, max })
}

/// The table's shorthands for the kinds without parameters: `boolean()`
/// is `Spec::of(Kind::Bool)`, and so on.
macro_rules! kind_shorthands {
    ($($shorthand:ident => $kind:ident,)*) => {$(
        #[doc = concat!("`Spec::of(Kind::", stringify!($kind), ")`.")]
        pub(crate) const fn $shorthand() -> Spec {
            Spec::of(Kind::$kind)
        }
    )*};
}
kind_shorthands! {
    boolean => Bool,
    port => Port,
    host => Host,
    host_ports => HostPorts,
    socket_addr => SocketAddr,
    path => Path,
    string => Str,
    name => Name,
    secret => Secret,
    ignored => Ignored,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OptionSpec {
    /// The option's name in the file (and its field's name).
    pub name: &'static str,
    /// Type, default and rules.
    pub spec: Spec,
    // Read by docs.rs (test-only), which writes the sample and README from it.
    #[cfg_attr(not(test), allow(dead_code))]
    /// Help: the field's doc comment, one string per line.
    pub help: &'static [&'static str],
}

/// Which options of its table a section has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// All of them.
    All,
    /// A topic section: all of them, those marked `kafka_common` defaulting
    /// to `[kafka]`'s value.
    Topic,
    /// `[kafka]`: those the topic sections inherit.
    Kafka,
    /// None: raw properties passed through (`[kafka_client]`).
    Passthrough,
}

/// One section of the configuration file.
#[derive(Clone, Copy)]
pub(crate) struct SectionSpec {
    /// Its name in the file.
    pub name: &'static str,
    // Read by docs.rs (test-only), which writes the sample and README from it.
    #[cfg_attr(not(test), allow(dead_code))]
    /// What it is for (the sample's comment under the header), lines
    /// separated by `\n`.
    pub help: &'static str,
    /// Its table.
    pub options: &'static [OptionSpec],
    /// Which of the table's options it has.
    pub part: Part,
    /// Index of its per-topic defaults (0 outside the topic sections).
    pub topic: usize,
    // Read by docs.rs (test-only), which writes the sample and README from it.
    #[cfg_attr(not(test), allow(dead_code))]
    /// A section of ours, not the reference's.
    pub ours: bool,
    /// Where its values are kept in a [`Config`] (`None`: checked only,
    /// as `[kafka]`, whose values the topic sections take).
    pub values: Option<fn(&Config) -> &dyn Section>,
    /// The same, to store them.
    pub values_mut: Option<fn(&mut Config) -> &mut dyn Section>,
}

impl SectionSpec {
    /// Its options, in table order.
    pub(crate) fn options(&self) -> impl Iterator<Item = &'static OptionSpec> + '_ {
        let part = self.part;
        self.options.iter().filter(move |o| match part {
            Part::All | Part::Topic => true,
            Part::Kafka => o.spec.kafka_common,
            Part::Passthrough => false,
        })
    }

    // Used by docs.rs (test-only).
    #[cfg_attr(not(test), allow(dead_code))]
    /// Its options as the sample lists them: a topic section leaves those
    /// it inherits to `[kafka]`.
    pub(crate) fn own_options(&self) -> impl Iterator<Item = &'static OptionSpec> + '_ {
        let part = self.part;
        self.options()
            .filter(move |o| part != Part::Topic || !o.spec.kafka_common)
    }

    /// An option's default text in this section.
    pub(crate) fn default_text(&self, option: &OptionSpec) -> &'static str {
        option.spec.default.text(self.topic)
    }
}

/// A section struct's fields by option name (the macro implements it).
pub(crate) trait Section {
    /// The field of option `name`; `None` for options kept nowhere.
    fn field(&self, name: &str) -> Option<&dyn OptionValue>;
    /// The same, to store a value.
    fn field_mut(&mut self, name: &str) -> Option<&mut dyn OptionValue>;
}

/// A field an option is stored in, reached by name.
pub(crate) trait OptionValue {
    /// Stores a typed value (`Unset` keeps the current one).
    fn assign(&mut self, parsed: Parsed, kind: Kind) -> Result<(), String>;
    /// The value as it would be written in a file (secrets as `****`).
    fn render(&self) -> String;
    /// The secret, for a secret field.
    fn as_secret(&self) -> Option<&Secret>;
    /// The number, for a whole-number field.
    fn as_u64(&self) -> Option<u64>;
}

/// The Rust types option fields have.
pub(crate) trait FieldType: Sized {
    /// The value of a typed text; `Err` when the kind does not fit the type
    /// (a table error, caught by the tests) or a number does not fit it.
    fn from_parsed(parsed: Parsed, kind: Kind) -> Result<Self, String>;
    /// As written in a file.
    fn render(&self) -> String;
    /// For [`OptionValue::as_secret`].
    fn as_secret(&self) -> Option<&Secret> {
        None
    }
    /// For [`OptionValue::as_u64`].
    fn as_u64(&self) -> Option<u64> {
        None
    }
}

impl<T: FieldType> OptionValue for T {
    fn assign(&mut self, parsed: Parsed, kind: Kind) -> Result<(), String> {
        if parsed != Parsed::Unset {
            *self = T::from_parsed(parsed, kind)?;
        }
        Ok(())
    }
    fn render(&self) -> String {
        FieldType::render(self)
    }
    fn as_secret(&self) -> Option<&Secret> {
        FieldType::as_secret(self)
    }
    fn as_u64(&self) -> Option<u64> {
        FieldType::as_u64(self)
    }
}

fn mismatch<T>(parsed: &Parsed, kind: Kind) -> Result<T, String> {
    Err(format!(
        "option table error: {kind:?} gave {parsed:?}, which a {} field cannot hold",
        std::any::type_name::<T>()
    ))
}

/// A whole number into a narrower type, with the bounds in the message.
fn whole<T: TryFrom<u64>>(parsed: Parsed, kind: Kind) -> Result<T, String> {
    match (&parsed, kind) {
        (Parsed::Int(n), Kind::Int { min, max }) => {
            T::try_from(*n).map_err(|_| format!("out of range: {}", value::range(min, max)))
        }
        _ => mismatch(&parsed, kind),
    }
}

macro_rules! whole_number_fields {
    ($($t:ty),*) => {$(
        impl FieldType for $t {
            fn from_parsed(parsed: Parsed, kind: Kind) -> Result<Self, String> {
                whole(parsed, kind)
            }
            fn render(&self) -> String {
                self.to_string()
            }
            fn as_u64(&self) -> Option<u64> {
                u64::try_from(*self).ok()
            }
        }
    )*};
}
whole_number_fields!(u64, u32, usize);

/// An optional field: unset by an empty value (or one of blanks).
impl<T: FieldType> FieldType for Option<T> {
    fn from_parsed(parsed: Parsed, kind: Kind) -> Result<Self, String> {
        if parsed == Parsed::Unset {
            return Ok(None);
        }
        let value = T::from_parsed(parsed, kind)?;
        Ok(Some(value).filter(|v| !FieldType::render(v).trim().is_empty()))
    }
    fn render(&self) -> String {
        self.as_ref().map(FieldType::render).unwrap_or_default()
    }
}

/// Fields that hold one kind's value as it is: `$variant` of [`Parsed`],
/// written back by `$render`, with the `FieldType` methods in braces after.
macro_rules! plain_fields {
    ($($t:ty: $variant:ident, |$v:ident| $render:expr $(, { $($more:tt)* })?;)*) => {$(
        impl FieldType for $t {
            fn from_parsed(parsed: Parsed, kind: Kind) -> Result<Self, String> {
                match parsed {
                    Parsed::$variant(value) => Ok(value),
                    parsed => mismatch(&parsed, kind),
                }
            }
            fn render(&self) -> String {
                let $v = self;
                $render
            }
            $($($more)*)?
        }
    )*};
}
plain_fields! {
    bool: Bool, |b| b.to_string();
    String: Text, |t| t.clone();
    Vec<String>: List, |items| items.join(",");
    SocketAddr: Addr, |a| a.to_string();
    PathBuf: Path, |p| p.display().to_string();
    u16: Port, |p| p.to_string(), {
        fn as_u64(&self) -> Option<u64> {
            Some(u64::from(*self))
        }
    };
    // Rendered as `****` (empty when unset).
    Secret: Secret, |s| s.to_string(), {
        fn as_secret(&self) -> Option<&Secret> {
            Some(self)
        }
    };
}

/// The default of option `name` of `options` in the topic section `topic`,
/// typed for its field. The table's defaults are constants, all read by
/// the tests (`every_default_reads_and_prints_back`): a failure here is a
/// table error, not a user's.
pub(crate) fn default_value<T: FieldType>(options: &[OptionSpec], name: &str, topic: usize) -> T {
    let typed = options
        .iter()
        .find(|o| o.name == name)
        .ok_or_else(|| "no such option".to_string())
        .and_then(|o| {
            let text = o.spec.default.text(topic);
            o.spec
                .kind
                .parse(text, text)
                .and_then(|parsed| T::from_parsed(parsed, o.spec.kind))
        });
    match typed {
        Ok(value) => value,
        Err(reason) => panic!("option table: the default of {name}: {reason}"),
    }
}

/// Declares a section's struct and its option table in one place: each
/// field is an option, its doc comment the help, its initialiser the
/// [`Spec`]. `accepted { ... }` adds options with no field (read and
/// checked, or ignored, but never stored); `extra { ... }` adds fields
/// that are no options (such a struct gets no `Default`: set them).
///
/// ```text
/// options_section! {
///     /// `[wal]` options.
///     pub struct WalSection {
///         /// Threads writing from the WAL to InfluxDB.
///         writer_threads: usize = int(1, 64).default("2"),
///     }
/// }
/// ```
macro_rules! options_section {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[doc = $help:literal])* $field:ident : $ty:ty = $spec:expr, )*
        }
        $( accepted {
            $( $(#[doc = $ahelp:literal])* $accepted:ident = $aspec:expr, )*
        } )?
    ) => {
        $crate::schema::options_section! { @struct
            $(#[$meta])* pub struct $name {
                $( $(#[doc = $help])* $field : $ty = $spec, )*
            }
            accepted { $($( $(#[doc = $ahelp])* $accepted = $aspec, )*)? }
            extra {}
        }
        impl Default for $name {
            fn default() -> Self {
                Self::table_defaults(0)
            }
        }
    };
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[doc = $help:literal])* $field:ident : $ty:ty = $spec:expr, )*
        }
        $( accepted {
            $( $(#[doc = $ahelp:literal])* $accepted:ident = $aspec:expr, )*
        } )?
        extra {
            $( $(#[doc = $xdoc:literal])* $extra:ident : $xty:ty = $xinit:expr, )*
        }
    ) => {
        $crate::schema::options_section! { @struct
            $(#[$meta])* pub struct $name {
                $( $(#[doc = $help])* $field : $ty = $spec, )*
            }
            accepted { $($( $(#[doc = $ahelp])* $accepted = $aspec, )*)? }
            extra { $( $(#[doc = $xdoc])* $extra : $xty = $xinit, )* }
        }
    };
    (@struct
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[doc = $help:literal])* $field:ident : $ty:ty = $spec:expr, )*
        }
        accepted {
            $( $(#[doc = $ahelp:literal])* $accepted:ident = $aspec:expr, )*
        }
        extra {
            $( $(#[doc = $xdoc:literal])* $extra:ident : $xty:ty = $xinit:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $( $(#[doc = $xdoc])* pub $extra: $xty, )*
            $( $(#[doc = $help])* pub $field: $ty, )*
        }

        impl $name {
            /// The option table of this section, in the order the sample
            /// and `check-config` list the options.
            pub(crate) const OPTIONS: &'static [$crate::schema::OptionSpec] = &[
                $( $crate::schema::OptionSpec {
                    name: stringify!($field),
                    spec: $spec,
                    help: &[$($help),*],
                }, )*
                $( $crate::schema::OptionSpec {
                    name: stringify!($accepted),
                    spec: $aspec,
                    help: &[$($ahelp),*],
                }, )*
            ];

            /// The table's defaults (those of the topic section `topic`).
            pub(crate) fn table_defaults(topic: usize) -> Self {
                $name {
                    $( $extra: $xinit, )*
                    $( $field: $crate::schema::default_value(
                        Self::OPTIONS,
                        stringify!($field),
                        topic,
                    ), )*
                }
            }
        }

        impl $crate::schema::Section for $name {
            fn field(&self, name: &str) -> Option<&dyn $crate::schema::OptionValue> {
                match name {
                    $( stringify!($field) => Some(&self.$field), )*
                    _ => None,
                }
            }
            fn field_mut(
                &mut self,
                name: &str,
            ) -> Option<&mut dyn $crate::schema::OptionValue> {
                match name {
                    $( stringify!($field) => Some(&mut self.$field), )*
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use options_section;
