//! The effective configuration as `[section]` / `option = value` text, secrets
//! masked: what `check-config` prints and the DEBUG start-up log shows, in
//! the option table's order.

use std::fmt;

use super::options::SECTIONS;
use super::schema::Part;
use super::Config;

/// One section of the effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveSection {
    /// Section name (`DEFAULT`, `influxdb`, ...).
    pub name: &'static str,
    /// Its options, in a stable order.
    pub options: Vec<EffectiveOption>,
}

/// One option with its value as text, secrets shown as `****`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveOption {
    /// Option name.
    pub name: String,
    /// Value as it would be written in the file (empty when unset).
    pub value: String,
}

impl Config {
    /// Every section and option with its effective value, secrets masked,
    /// in the table's order. Topic sections show the values after `[kafka]`
    /// inheritance; `[kafka]` itself is not listed.
    pub fn effective(&self) -> Vec<EffectiveSection> {
        let mut sections = Vec::new();
        for section in SECTIONS {
            let options = if section.part == Part::Passthrough {
                self.kafka_client
                    .rendered()
                    .map(|(name, value)| EffectiveOption {
                        name: name.to_string(),
                        value,
                    })
                    .collect()
            } else if let Some(get) = section.values {
                let values = get(self);
                section
                    .options()
                    .filter_map(|o| {
                        let value = values.field(o.name)?.render();
                        Some(EffectiveOption {
                            name: o.name.to_string(),
                            value,
                        })
                    })
                    .collect()
            } else {
                continue;
            };
            sections.push(EffectiveSection {
                name: section.name,
                options,
            });
        }
        sections
    }
}

/// Prints the effective configuration as an INI file that would load back to
/// the same values (secrets masked), headed by the files it came from.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "# Effective configuration. Sources, in the order read (later ones win):"
        )?;
        if self.sources.is_empty() {
            writeln!(f, "#   (none: built-in defaults only)")?;
        }
        for source in &self.sources {
            writeln!(f, "#   {}", source.display())?;
        }
        writeln!(f, "# [kafka] is folded into the three kafka_* sections.")?;
        for section in self.effective() {
            writeln!(f)?;
            writeln!(f, "[{}]", section.name)?;
            for o in &section.options {
                if o.value.is_empty() {
                    writeln!(f, "{} =", o.name)?;
                } else {
                    // `$` is doubled and continuation lines indented so that
                    // the output reads back as the same values.
                    let value = o.value.replace('$', "$$").replace('\n', "\n    ");
                    writeln!(f, "{} = {}", o.name, value)?;
                }
            }
        }
        Ok(())
    }
}
