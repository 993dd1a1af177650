//! Generated Monasca messages for the differential test against the Python
//! reference: metric and alarm-transition messages in which every field
//! takes every JSON type — strings of every kind (unicode, escapes, quotes,
//! backslashes, control characters, empty, line protocol syntax), integers
//! (negative, beyond 2^53 and 2^63), floats (exponents, -0.0, subnormals,
//! the largest double, overflowing ones), booleans, `null`, objects and
//! arrays — or is missing, repeated (Python keeps the last) or joined by
//! extra members; numbers given as strings, timestamps as floats or
//! strings, a UTF-8 byte-order mark before the JSON, odd whitespace and
//! escapes, broken JSON and bytes that are not UTF-8.
//!
//! About half of the messages are plain, as the Monasca API and the
//! thresholding engine publish them (they take the fast paths), the rest
//! have one or more odd fields. Plain messages get distinct timestamps, so
//! that their points do not overwrite each other in influxd.

use std::fmt::Write as _;

use super::oracle::Kind;

/// One generated Kafka message value.
#[derive(Debug, Clone)]
pub struct Generated {
    pub kind: Kind,
    pub payload: Vec<u8>,
}

/// A JSON value to render; strings get their escapes chosen at render time.
#[derive(Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    /// A number as written.
    Number(String),
    /// A string, by its content.
    Str(String),
    /// Text written as it is (escapes of lone surrogates, invalid tokens).
    Raw(String),
    Array(Vec<Json>),
    Object(Vec<(Key, Json)>),
}

/// An object key: its content, or raw text (with its quotes).
#[derive(Debug, Clone)]
enum Key {
    Str(String),
    Raw(String),
}

fn key(text: &str) -> Key {
    Key::Str(text.to_string())
}

fn string(text: &str) -> Json {
    Json::Str(text.to_string())
}

fn number(text: impl Into<String>) -> Json {
    Json::Number(text.into())
}

/// How much whitespace a message puts between tokens.
#[derive(Clone, Copy)]
enum Spacing {
    /// None at all (Java and Go producers).
    Compact,
    /// Python's `", "` and `": "`.
    Python,
    /// Random blanks, tabs, newlines and carriage returns.
    Random,
}

/// Characters that make strings hard: line protocol and JSON syntax,
/// control characters, spaces and format characters of other kinds,
/// non-ASCII of two, three and four bytes, combining marks, private use,
/// unassigned and non-characters, digits of other scripts.
const HARD_CHARS: &[char] = &[
    'a',
    'Z',
    '0',
    '9',
    '_',
    '.',
    '-',
    ' ',
    ',',
    '=',
    '\\',
    '"',
    '\'',
    '#',
    '/',
    '{',
    '}',
    '[',
    ']',
    ':',
    '\n',
    '\r',
    '\t',
    '\0',
    '\u{1}',
    '\u{b}',
    '\u{1c}',
    '\u{1f}',
    '\u{7f}',
    '\u{85}',
    '\u{a0}',
    '\u{ad}',
    'é',
    'ß',
    'İ',
    '名',
    '\u{301}',
    '\u{200b}',
    '\u{2028}',
    '\u{2029}',
    '\u{3000}',
    '\u{feff}',
    '\u{e000}',
    '\u{378}',
    '\u{ffff}',
    '😀',
    '\u{10ffff}',
    '١',
    '１',
    '€',
    '–',
    '‰',
    '∑',
];

/// Words that mean something to the transform or to InfluxDB.
const SPECIAL_WORDS: &[&str] = &[
    "",
    " ",
    "time",
    "_region",
    "_tenant_id",
    "value",
    "None",
    "#comment",
    "\t#x",
    "\0\t#x",
    "\t\0name",
    "a\\ b",
    "a\\,b",
    "a\\=b",
    "a\\\"b",
    "C:\\temp\\",
    "C:\\temp\\dir",
    "\\",
    "\\\\",
    "trailing space ",
    "line one\nline two",
    "cr\rhere",
    "subAlarmState",
    "\"subAlarmState\":",
    "a=b,c=d e",
    "{}",
    "[]",
    "null",
    "1.5",
    "0",
];

/// Realistic names, dimension keys and values.
const METRIC_NAMES: &[&str] = &[
    "cpu.idle_perc",
    "mem.free_mb",
    "disk.space_used_perc",
    "http_status",
    "net.in_bytes_sec",
    "vm.cpu.utilization_perc",
    "log.error_count",
];
const DIMENSION_KEYS: &[&str] = &[
    "hostname",
    "service",
    "component",
    "device",
    "mount_point",
    "url",
    "process_name",
    "resource_id",
];
const DIMENSION_VALUES: &[&str] = &[
    "devstack",
    "monitoring",
    "persister",
    "/dev/sda1",
    "/var/lib/monasca",
    "http://10.0.0.1:8070/healthcheck",
    "compute-17.example.org",
    "6f5b1c2d-0a9e-4f7b-8c3d-2e1f0a9b8c7d",
];

/// Integer spellings: small, negative, around 2^53, 2^63 and 2^64, and far beyond.
const INTEGERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "7",
    "42",
    "-273",
    "1554725987408",
    "-1554725987408",
    "9007199254740991",
    "9007199254740993",
    "-9007199254740993",
    "9223372036854",
    "9223372036855",
    "-9223372036855",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "123456789012345678901234567890",
    "-99999999999999999999999999999999999999999",
];

/// Float spellings: fractions, exponents, negative zero, subnormals, the
/// largest double, ones that overflow to infinity or underflow to zero.
const FLOATS: &[&str] = &[
    "0.0",
    "-0.0",
    "1.5",
    "7.50",
    "-3.25",
    "0.1",
    "0.001",
    "0.00001",
    "1e3",
    "1E+3",
    "1e-3",
    "-2.5e-3",
    "5E-1",
    "1e16",
    "1.5e16",
    "1e22",
    "1e100",
    "123456789.123456789",
    "1554725987408.105",
    "1554725987408.999",
    "-1554725987408.5",
    "4.109999999999999",
    "9007199254740993.0",
    "9.223372036854775807e18",
    "1.7976931348623157e308",
    "1.7976931348623159e308",
    "2.2250738585072014e-308",
    "2.225073858507201e-308",
    "5e-324",
    "4e-324",
    "1e-400",
    "1e400",
    "-1e400",
    "0e0",
    "-0e-5",
];

/// Numbers as strings, as Python's `float()` and `int()` see them: signs,
/// surrounding whitespace of every Unicode kind, `_` between digits,
/// digits of other scripts, `nan` and `inf` spellings, and bad ones.
const NUMERIC_STRINGS: &[&str] = &[
    "7.5",
    "100",
    "-12",
    "+5",
    " 1.5 ",
    "\t12\n",
    "\u{b}\u{c}3\u{1c}\u{1f}",
    "\u{85}\u{a0}4\u{2003}\u{3000}",
    "\u{200b}5",
    "1_000",
    "1_000.5_5",
    "1e1_0",
    "1__0",
    "_1",
    "1_",
    "0012",
    "1554725987408",
    "1554725987408.105",
    "1e3",
    "1E+3",
    ".5",
    "5.",
    ".",
    "nan",
    "-NaN",
    "inf",
    "-Infinity",
    "iNfInItY",
    "infinit",
    "1e400",
    "0x10",
    "1,5",
    "1.5.5",
    "١٢٣",
    "١٢٣.٥",
    "１２",
    "𝟏𝟐",
    "٣e٢",
    "9223372036854775808",
    "99999999999999999999999",
    "",
    "  ",
    "abc",
    "None",
    "True",
];

/// A random generator of messages, reproducible from its seed.
pub struct Generator {
    rng: fastrand::Rng,
    serial: u64,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator {
            rng: fastrand::Rng::with_seed(seed),
            serial: 0,
        }
    }

    /// The next message: three metrics for every alarm transition.
    pub fn message(&mut self) -> Generated {
        self.serial += 1;
        let kind = if self.rng.u8(0..4) == 0 {
            Kind::AlarmTransition
        } else {
            Kind::Metric
        };
        let odd = self.rng.bool();
        let body = match kind {
            Kind::Metric => self.metric_message(odd),
            Kind::AlarmTransition => self.alarm_message(odd),
        };
        let payload = self.render_message(&body, odd);
        Generated { kind, payload }
    }

    fn chance(&mut self, percent: u8) -> bool {
        self.rng.u8(0..100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.usize(..items.len())]
    }

    fn word(&mut self, words: &[&'static str]) -> &'static str {
        words[self.rng.usize(..words.len())]
    }

    /// A plain timestamp no other plain message has.
    fn unique_timestamp(&self) -> u64 {
        1_600_000_000_000 + self.serial * 7
    }

    // --- Strings --------------------------------------------------------

    /// A string of hard characters, up to `max` of them.
    fn hard_text(&mut self, max: usize) -> String {
        let len = self.rng.usize(0..=max);
        (0..len).map(|_| *self.pick(HARD_CHARS)).collect()
    }

    /// Any string: realistic, a special word, hard characters, a mix, long.
    fn any_text(&mut self) -> String {
        match self.rng.u8(0..100) {
            0..=24 => self.pick(DIMENSION_VALUES).to_string(),
            25..=49 => self.pick(SPECIAL_WORDS).to_string(),
            50..=79 => self.hard_text(8),
            80..=94 => {
                let mut text = self.pick(DIMENSION_KEYS).to_string();
                let at = self.rng.usize(0..=text.len());
                text.insert_str(at, &self.hard_text(3));
                text
            }
            95..=98 => "x".repeat(self.rng.usize(200..400)),
            _ => self.hard_text(300),
        }
    }

    /// A string field's value as raw JSON that Python decodes to a lone
    /// surrogate, or to a pair written as two escapes.
    fn surrogate_string(&mut self) -> Json {
        Json::Raw(
            self.pick(&[
                r#""\ud800""#,
                r#""x\udfff""#,
                r#""\udc00\ud800""#,
                r#""\ud83d\ude00""#,
                r#""\uD83D\uDE00 ok""#,
            ])
            .to_string(),
        )
    }

    // --- Values ---------------------------------------------------------

    fn integer(&mut self) -> Json {
        if self.chance(70) {
            number(*self.pick(INTEGERS))
        } else {
            let digits = self.rng.usize(1..=25);
            let mut text = String::new();
            if self.rng.bool() {
                text.push('-');
            }
            text.push(char::from(b'1' + self.rng.u8(0..9)));
            for _ in 1..digits {
                text.push(char::from(b'0' + self.rng.u8(0..10)));
            }
            number(text)
        }
    }

    fn float(&mut self) -> Json {
        match self.rng.u8(0..10) {
            0..=5 => number(*self.pick(FLOATS)),
            6..=7 => {
                // A random double in Rust's shortest form (Python reads it the same).
                let x = f64::from_bits(self.rng.u64(..));
                if x.is_finite() {
                    number(format!("{x:e}"))
                } else {
                    number("1.5")
                }
            }
            _ => {
                let mantissa = self.rng.i64(-10_000_000..10_000_000);
                let exponent = self.rng.i32(-30..30);
                number(format!("{mantissa}.{}e{exponent}", self.rng.u32(..1000)))
            }
        }
    }

    /// Any JSON value, nested up to `depth` more levels.
    fn any_value(&mut self, depth: u32) -> Json {
        let top = if depth == 0 { 7 } else { 10 };
        match self.rng.u8(0..top) {
            0 => Json::Null,
            1 => Json::Bool(self.rng.bool()),
            2 => self.integer(),
            3 => self.float(),
            4..=6 => Json::Str(self.any_text()),
            7 => Json::Array(
                (0..self.rng.usize(0..4))
                    .map(|_| self.any_value(depth - 1))
                    .collect(),
            ),
            _ => Json::Object(
                (0..self.rng.usize(0..4))
                    .map(|_| (Key::Str(self.any_text()), self.any_value(depth - 1)))
                    .collect(),
            ),
        }
    }

    /// A value nested deeper than the transform's depth limits (and, at
    /// times, than Python's recursion limit).
    fn deep_value(&mut self) -> Json {
        let depth = *self.pick(&[100, 127, 128, 129, 200, 500, 900, 980, 1000, 1200]);
        let (open, close) = if self.rng.bool() {
            ("[", "]")
        } else {
            ("{\"k\": [", "]}")
        };
        Json::Raw(format!("{}1{}", open.repeat(depth), close.repeat(depth)))
    }

    /// A value of any type for a field that is normally `usual`.
    fn odd_value(&mut self, usual: Json) -> Json {
        match self.rng.u8(0..20) {
            0..=1 => usual,
            2..=3 => Json::Null,
            4 => Json::Bool(self.rng.bool()),
            5..=6 => self.integer(),
            7..=8 => self.float(),
            9..=12 => Json::Str(self.any_text()),
            13 => Json::Str(self.pick(NUMERIC_STRINGS).to_string()),
            14 => self.surrogate_string(),
            15 => Json::Array(vec![]),
            16 => Json::Object(vec![]),
            17 => self.any_value(2),
            18 => Json::Array(vec![self.any_value(1), self.any_value(1)]),
            _ => Json::Object(vec![(Key::Str(self.any_text()), self.any_value(1))]),
        }
    }

    /// A string field: mostly `usual`, at times any string, at times any value.
    fn text_field(&mut self, odd: bool, usual: &str) -> Json {
        if !odd || self.chance(50) {
            string(usual)
        } else if self.chance(50) {
            Json::Str(self.any_text())
        } else {
            self.odd_value(string(usual))
        }
    }

    /// A timestamp: plain (an integer, or a float as agents send
    /// `time.time() * 1000`, whose repr has up to four fraction digits), or
    /// any other number, numeric string or value.
    fn timestamp(&mut self, odd: bool) -> Json {
        if !odd {
            return if self.chance(25) {
                let digits = self.rng.usize(1..=4);
                let fraction: String = (0..digits)
                    .map(|_| char::from(b'0' + self.rng.u8(0..10)))
                    .collect();
                number(format!("{}.{fraction}", self.unique_timestamp()))
            } else {
                number(self.unique_timestamp().to_string())
            };
        }
        let plain = number(self.unique_timestamp().to_string());
        if self.chance(50) {
            return plain;
        }
        match self.rng.u8(0..10) {
            // Up to 20 fraction digits; nines that round up to the next
            // integer in the float `json.loads` makes.
            0 => number(format!(
                "{}.{}",
                self.unique_timestamp(),
                self.pick(&[
                    "5",
                    "105",
                    "1052",
                    "999",
                    "99999999",
                    "00000000000000000001",
                    "49999999999999999999"
                ])
            )),
            1 => number(format!("{}e3", self.unique_timestamp() / 1000)),
            2 => Json::Str(self.unique_timestamp().to_string()),
            3 => Json::Str(self.pick(NUMERIC_STRINGS).to_string()),
            4 => self.integer(),
            5 => self.float(),
            _ => self.odd_value(plain),
        }
    }

    /// A metric value: plain, or any other number, numeric string or value.
    fn metric_value(&mut self, odd: bool) -> Json {
        if !odd || self.chance(40) {
            return match self.rng.u8(0..3) {
                0 => number(self.rng.u32(..1000).to_string()),
                1 => number(format!("{}.{}", self.rng.u32(..100), self.rng.u32(..100))),
                _ => self.float(),
            };
        }
        match self.rng.u8(0..8) {
            0..=1 => self.integer(),
            2..=3 => Json::Str(self.pick(NUMERIC_STRINGS).to_string()),
            4 => self.float(),
            _ => self.odd_value(number("1.5")),
        }
    }

    fn value_meta(&mut self, odd: bool) -> Option<Json> {
        if !odd {
            return match self.rng.u8(0..4) {
                0 => None,
                1 => Some(Json::Null),
                2 => Some(Json::Object(vec![])),
                _ => Some(Json::Object(vec![(key("status"), string("ok"))])),
            };
        }
        Some(match self.rng.u8(0..14) {
            0 => return None,
            1 => Json::Null,
            2 => self
                .pick(&[
                    Json::Object(vec![]),
                    Json::Array(vec![]),
                    Json::Str(String::new()),
                    number("0"),
                    number("0.0"),
                    number("-0.0"),
                    number("0e5"),
                    Json::Bool(false),
                ])
                .clone(),
            3 => self.deep_value(),
            4 => Json::Object(vec![
                (key("msg"), Json::Str(self.any_text())),
                (key("code"), self.integer()),
                (key("ratio"), self.float()),
            ]),
            5 => Json::Object(vec![
                (key("a"), self.any_value(1)),
                (key("b"), self.any_value(1)),
                (key("a"), self.any_value(1)),
            ]),
            6 => Json::Object(vec![
                (Key::Raw(r#""\u0061""#.into()), number("1")),
                (key("a"), number("2")),
            ]),
            7 => Json::Object(vec![(key("s"), self.surrogate_string())]),
            8 if self.chance(5) => {
                // Over Python's 4300-digit limit for reading an integer.
                let digits = self.rng.usize(4290..4310);
                Json::Array(vec![number(format!("1{}", "0".repeat(digits)))])
            }
            _ => self.any_value(3),
        })
    }

    fn dimensions(&mut self, odd: bool) -> Option<Json> {
        if !odd || self.chance(40) {
            let n = self.rng.usize(0..5);
            let mut members: Vec<(Key, Json)> = Vec::new();
            for _ in 0..n {
                let k = *self.pick(DIMENSION_KEYS);
                let v = *self.pick(DIMENSION_VALUES);
                members.push((key(k), string(v)));
            }
            return Some(Json::Object(members));
        }
        Some(match self.rng.u8(0..12) {
            0 => return None,
            1 => Json::Null,
            2 => self.odd_value(Json::Object(vec![])),
            _ => {
                let n = self.rng.usize(0..6);
                let mut members = Vec::new();
                for _ in 0..n {
                    let k = if self.chance(60) {
                        self.pick(DIMENSION_KEYS).to_string()
                    } else {
                        self.any_text()
                    };
                    let v = if self.chance(40) {
                        string(self.word(DIMENSION_VALUES))
                    } else {
                        self.odd_value(string("v"))
                    };
                    members.push((Key::Str(k), v));
                }
                if self.chance(2) {
                    // A series key over InfluxDB's 64 KiB limit.
                    members.push((
                        key("long"),
                        Json::Str("y".repeat(self.rng.usize(65_000..66_000))),
                    ));
                }
                if self.chance(20) && !members.is_empty() {
                    // A repeated name: Python keeps the last value.
                    let k = members[0].0.clone();
                    let v = self.odd_value(string("again"));
                    members.push((k, v));
                }
                Json::Object(members)
            }
        })
    }

    /// The members of an object, some missing, repeated or joined by extra
    /// ones when `odd`. `fields` are (name, value) in the usual order.
    fn members(&mut self, odd: bool, fields: Vec<(&str, Option<Json>)>) -> Json {
        let mut members: Vec<(Key, Json)> = Vec::new();
        for (name, value) in fields {
            let Some(value) = value else { continue };
            if odd && self.chance(4) {
                continue; // missing
            }
            if odd && self.chance(4) {
                // Repeated: an earlier value of any type, which Python drops.
                let earlier = self.odd_value(Json::Null);
                members.push((key(name), earlier));
            }
            let k = if odd && self.chance(2) {
                // The same key spelled with an escape.
                let mut chars = name.chars();
                let first = chars.next().map_or(0, u32::from);
                Key::Raw(format!("\"\\u{first:04x}{}\"", chars.as_str()))
            } else {
                key(name)
            };
            members.push((k, value));
        }
        if odd && self.chance(10) {
            members.push((Key::Str(self.any_text()), self.any_value(2)));
        }
        if odd && self.chance(5) {
            self.rng.shuffle(&mut members);
        }
        Json::Object(members)
    }

    // --- Messages -------------------------------------------------------

    fn metric_message(&mut self, odd: bool) -> Json {
        let name = *self.pick(METRIC_NAMES);
        let metric_fields = vec![
            ("name", Some(self.text_field(odd, name))),
            ("dimensions", self.dimensions(odd)),
            ("timestamp", Some(self.timestamp(odd))),
            ("value", Some(self.metric_value(odd))),
            ("value_meta", self.value_meta(odd)),
        ];
        let metric = self.members(odd, metric_fields);
        let tenant = self.tenant(odd);
        let meta_fields = vec![
            ("region", Some(self.text_field(odd, "RegionOne"))),
            ("tenantId", Some(tenant)),
        ];
        let meta = self.members(odd, meta_fields);
        let metric = if odd && self.chance(3) {
            self.odd_value(metric)
        } else {
            metric
        };
        let meta = if odd && self.chance(3) {
            self.odd_value(meta)
        } else {
            meta
        };
        let creation = number((self.unique_timestamp() / 1000).to_string());
        self.members(
            odd,
            vec![
                ("metric", Some(metric)),
                ("meta", Some(meta)),
                ("creation_time", Some(creation)),
            ],
        )
    }

    fn tenant(&mut self, odd: bool) -> Json {
        let plain = self.pick(&["t1", "6f5b1c2d0a9e4f7b8c3d2e1f0a9b8c7d", "admin"]);
        if !odd || self.chance(50) {
            return string(plain);
        }
        match self.rng.u8(0..6) {
            0 => Json::Str(self.hard_text(4)),
            1 => Json::Str(
                self.pick(&["a/b", "a\\b", "", "x y", "a.b", "名前", "tenant\ttab", "😀"])
                    .to_string(),
            ),
            2 => Json::Str("t".repeat(self.rng.usize(250..254))),
            _ => self.odd_value(string(plain)),
        }
    }

    fn alarm_message(&mut self, odd: bool) -> Json {
        let metrics = self.alarm_metrics(odd);
        let sub_alarms = self.sub_alarms(odd);
        let tenant = self.tenant(odd);
        let link = if odd && self.chance(30) {
            self.pick(&[None, Some(Json::Null), Some(Json::Str(String::new()))])
                .clone()
        } else {
            Some(string("http://some.link"))
        };
        let lifecycle = if odd && self.chance(30) {
            self.pick(&[None, Some(Json::Null), Some(number("0"))])
                .clone()
        } else {
            Some(string("OPEN"))
        };
        let fields = vec![
            ("tenantId", Some(tenant)),
            ("alarmId", Some(self.text_field(odd, "5c5b9bd1-2d3f-4e5a-9f6e-7d8c9b0a1f2e"))),
            ("alarmDefinitionId", Some(string("ad-1"))),
            ("alarmName", Some(string("cpu high"))),
            ("alarmDescription", Some(string(""))),
            ("metrics", Some(metrics)),
            ("oldState", Some(self.text_field(odd, "OK"))),
            ("newState", Some(self.text_field(odd, "ALARM"))),
            ("link", link.map(|l| if odd { self.odd_value(l) } else { l })),
            ("lifecycleState", lifecycle),
            ("severity", Some(string("HIGH"))),
            (
                "stateChangeReason",
                Some(self.text_field(
                    odd,
                    "Thresholds were exceeded for the sub-alarms: avg(cpu.idle_perc) < 10.0 with the values: [5.0]",
                )),
            ),
            ("timestamp", Some(self.timestamp(odd))),
            ("subAlarms", Some(sub_alarms)),
        ];
        let transition = self.members(odd, fields);
        let transition = if odd && self.chance(3) {
            self.odd_value(transition)
        } else {
            transition
        };
        self.members(odd, vec![("alarm-transitioned", Some(transition))])
    }

    fn metric_definition(&mut self, odd: bool) -> Json {
        let dimensions = self.dimensions(odd).unwrap_or(Json::Object(vec![]));
        Json::Object(vec![
            (key("id"), Json::Null),
            (key("name"), self.text_field(odd, "cpu.idle_perc")),
            (key("dimensions"), dimensions),
        ])
    }

    fn alarm_metrics(&mut self, odd: bool) -> Json {
        if !odd || self.chance(40) {
            return Json::Array(vec![self.metric_definition(false)]);
        }
        match self.rng.u8(0..6) {
            0 => Json::Array(vec![]),
            1 => Json::Array(vec![
                self.metric_definition(true),
                self.metric_definition(true),
            ]),
            2 => self.deep_value(),
            _ => self.odd_value(Json::Array(vec![])),
        }
    }

    fn sub_alarm(&mut self, odd: bool) -> Json {
        let expression = Json::Object(vec![
            (key("function"), string("AVG")),
            (key("metricName"), self.text_field(odd, "cpu.idle_perc")),
            (
                key("dimensions"),
                self.dimensions(odd).unwrap_or(Json::Object(vec![])),
            ),
            (key("operator"), string("LT")),
            (
                key("threshold"),
                if odd { self.float() } else { number("10.0") },
            ),
            (key("period"), number("60")),
            (key("periods"), number("1")),
        ]);
        let mut members = vec![
            (key("subAlarmExpression"), expression),
            (key("subAlarmState"), self.text_field(odd, "ALARM")),
            (
                key("currentValues"),
                Json::Array(vec![if odd { self.float() } else { number("5.0") }]),
            ),
        ];
        if odd && self.chance(30) {
            // The renamed keys deeper down, escaped, or inside strings.
            members.push((
                key("metricDefinition"),
                Json::Object(vec![
                    (key("currentValues"), Json::Array(vec![])),
                    (Key::Raw(r#""\u0073ubAlarmState""#.into()), string("OK")),
                    (key("text"), string("\"subAlarmExpression\": 1")),
                ]),
            ));
        }
        Json::Object(members)
    }

    fn sub_alarms(&mut self, odd: bool) -> Json {
        if !odd || self.chance(40) {
            return Json::Array(vec![self.sub_alarm(false)]);
        }
        match self.rng.u8(0..8) {
            0 => Json::Array(vec![]),
            1 => Json::Null,
            2 => Json::Array(vec![self.sub_alarm(true), self.sub_alarm(true)]),
            3 => self
                .pick(&[
                    Json::Object(vec![]),
                    Json::Str(String::new()),
                    number("0"),
                    Json::Bool(false),
                ])
                .clone(),
            4 => self.deep_value(),
            _ => self.odd_value(Json::Array(vec![])),
        }
    }

    // --- Rendering ------------------------------------------------------

    /// The message's bytes: the JSON, and for odd messages at times a
    /// byte-order mark, surrounding whitespace, damage.
    fn render_message(&mut self, body: &Json, odd: bool) -> Vec<u8> {
        let spacing = if !odd {
            *self.pick(&[Spacing::Compact, Spacing::Python])
        } else {
            *self.pick(&[Spacing::Compact, Spacing::Python, Spacing::Random])
        };
        let mut text = String::new();
        self.render(body, spacing, &mut text);
        if !odd {
            return text.into_bytes();
        }
        match self.rng.u8(0..100) {
            0..=3 => text.insert(0, '\u{feff}'),
            4 => text.insert_str(0, "\u{ef}\u{bb}\u{bf}"),
            5 => text.insert_str(0, " \u{feff}"),
            6..=7 => text.insert_str(0, self.word(&[" ", "\n", "\t\r\n "])),
            8..=9 => text.push_str(self.word(&[" ", "\n", "\r\n"])),
            10 => {
                let cut = self.rng.usize(0..text.len().max(1));
                let cut = (0..=cut)
                    .rev()
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(0);
                text.truncate(cut);
            }
            11 => text.push_str(self.word(&["x", "{}", ",", "\u{0}"])),
            12 => {
                // A byte that is not UTF-8 inside the JSON.
                let mut bytes = text.into_bytes();
                let at = self.rng.usize(0..bytes.len().max(1)).min(bytes.len());
                bytes.insert(at, *self.pick(&[0xff, 0xc3, 0x80, 0xed]));
                return bytes;
            }
            13 => {
                // Non-JSON literals Python's simplejson 3.19 refuses too.
                let word = self.pick(&["NaN", "Infinity", "-Infinity"]);
                if let Some(at) = text.find("\"value\":") {
                    let after = at + "\"value\":".len();
                    let end = text[after..]
                        .find([',', '}'])
                        .map_or(text.len(), |e| after + e);
                    text.replace_range(after..end, word);
                }
            }
            _ => {}
        }
        text.into_bytes()
    }

    fn space(&mut self, spacing: Spacing, out: &mut String, python: &str) {
        match spacing {
            Spacing::Compact => {}
            Spacing::Python => out.push_str(python),
            Spacing::Random => {
                for _ in 0..self.rng.usize(0..3) {
                    out.push(*self.pick(&[' ', '\t', '\n', '\r']));
                }
            }
        }
    }

    fn render(&mut self, value: &Json, spacing: Spacing, out: &mut String) {
        match value {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(text) | Json::Raw(text) => out.push_str(text),
            Json::Str(text) => self.render_string(text, out),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                        self.space(spacing, out, " ");
                    }
                    self.render(item, spacing, out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                        self.space(spacing, out, " ");
                    }
                    match k {
                        Key::Str(text) => self.render_string(text, out),
                        Key::Raw(text) => out.push_str(text),
                    }
                    self.space(spacing, out, "");
                    out.push(':');
                    self.space(spacing, out, " ");
                    self.render(v, spacing, out);
                }
                out.push('}');
            }
        }
    }

    /// A JSON string, with the escapes JSON requires and, at random, the
    /// optional ones (`\/`, `\uXXXX` for any character, surrogate pairs).
    fn render_string(&mut self, text: &str, out: &mut String) {
        let escape_more = self.chance(15);
        out.push('"');
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' if self.rng.bool() => out.push_str("\\n"),
                '\r' if self.rng.bool() => out.push_str("\\r"),
                '\t' if self.rng.bool() => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                '/' if escape_more && self.rng.bool() => out.push_str("\\/"),
                c if escape_more && self.chance(30) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        if self.rng.bool() {
                            let _ = write!(out, "\\u{unit:04X}");
                        } else {
                            let _ = write!(out, "\\u{unit:04x}");
                        }
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}
