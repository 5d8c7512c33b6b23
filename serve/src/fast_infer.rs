//! The common KServe v2 JSON infer body, read in one pass without serde.
//!
//! `{"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": [...]}]}`
//! (keys in any order, `id` allowed) is what every JSON client sends, and reading its 784 or
//! 1024 numbers through serde_json's visitor costs most of a warm MLP request in wasm
//! (`serve/examples/breakdown.rs`). This reader walks the bytes once and writes each number
//! straight into the `FlatData` the serde path would build.
//!
//! It is an *optimistic* reader: anything it is not sure to read exactly as serde_json does
//! (escapes or non-ASCII in strings, `null`, `parameters`, `outputs`, unknown or repeated keys,
//! numbers whose significand overflows a u64 or whose decimal exponent is beyond ±22, a missing
//! field, trailing bytes, deep nesting) makes it give up with `None`, and the caller parses the
//! same bytes with serde. So every body serde refuses is refused by serde, with serde's message,
//! and every body this reader accepts yields the values serde would (checked by the tests below
//! against the serde path, on generated and mutated bodies).
//!
//! Numbers: serde_json 1 without `float_roundtrip` (this workspace's features) turns
//! `-?int(.frac)?(e±exp)?` into a u64 significand `s` and a decimal exponent `e`, then
//! `s as f64` multiplied or divided by `10^|e|` from a table of correctly rounded powers. For
//! `|e| <= 22` those powers are exact, and this reader does the same two f64 operations, so the
//! f64 (and the f32 made from it) is bit-identical. Integers are `s as f64` with the sign.

use crate::data::FlatData;

/// One input tensor as the serde path's `InputTensor` would hold it (no `parameters`).
pub(crate) struct FastInput {
    pub name: String,
    pub shape: Vec<i64>,
    pub datatype: String,
    pub data: Option<FlatData>,
}

/// `(id, inputs)` of a body of the common form, or `None`: parse it with serde instead.
pub(crate) fn parse(json: &[u8]) -> Option<(Option<String>, Vec<FastInput>)> {
    let mut p = Reader { b: json, i: 0 };
    p.expect(b'{')?;
    let (mut id, mut inputs) = (None, None);
    loop {
        match p.string()? {
            "id" if id.is_none() => {
                p.expect(b':')?;
                id = Some(p.string()?.to_owned());
            }
            "inputs" if inputs.is_none() => {
                p.expect(b':')?;
                inputs = Some(p.inputs()?);
            }
            _ => return None,
        }
        if !p.comma_or(b'}')? {
            break;
        }
    }
    p.skip_ws();
    // Trailing bytes (binary tensors without the header, garbage): serde words those errors.
    if p.i != json.len() {
        return None;
    }
    Some((id, inputs?))
}

/// A TensorFlow Serving predict body of the common form, `{"instances": [tensor, ...]}` or
/// `{"inputs": tensor}` (a tensor: a number or nested arrays of numbers; `signature_name`
/// allowed), as the serde path's `(signature_name, instances, inputs)`; `None`: use serde.
pub(crate) fn parse_tf(json: &[u8]) -> Option<(Option<String>, Option<Vec<FlatData>>, Option<FlatData>)> {
    let mut p = Reader { b: json, i: 0 };
    p.expect(b'{')?;
    let (mut sig, mut instances, mut inputs) = (None, None, None);
    loop {
        match p.string()? {
            "signature_name" if sig.is_none() => {
                p.expect(b':')?;
                sig = Some(p.string()?.to_owned());
            }
            "instances" if instances.is_none() => {
                p.expect(b':')?;
                let mut list = Vec::new();
                p.list(|p| {
                    list.push(p.tensor()?);
                    Some(())
                })?;
                instances = Some(list);
            }
            "inputs" if inputs.is_none() => {
                p.expect(b':')?;
                inputs = Some(p.tensor()?);
            }
            _ => return None,
        }
        if !p.comma_or(b'}')? {
            break;
        }
    }
    p.skip_ws();
    (p.i == json.len()).then_some((sig, instances, inputs))
}

/// `10^k` for `k <= 22`: exact in f64, and the values of serde_json's `POW10` table.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
    1e20, 1e21, 1e22,
];

/// Nesting of `data` this reader follows (serde_json allows 128 levels in all; deeper here
/// goes to serde, which words the error).
const MAX_DATA_DEPTH: u32 = 32;

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn skip_ws(&mut self) {
        // serde_json's whitespace: space, \n, \t, \r.
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.b.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// After an element: `Some(true)` on `,`, `Some(false)` on `close`, else `None`.
    fn comma_or(&mut self, close: u8) -> Option<bool> {
        let c = self.peek()?;
        self.i += 1;
        match c {
            b',' => Some(true),
            c if c == close => Some(false),
            _ => None,
        }
    }

    /// A string of printable ASCII without escapes (anything else: `None`).
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                0x20..=0x7e if self.b[self.i] != b'\\' => self.i += 1,
                _ => return None,
            }
        }
        let s = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        self.i += 1;
        Some(s)
    }

    /// `[item, ...]`, possibly empty: `item` reads one element each time.
    fn list(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.expect(b'[')?;
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            item(self)?;
            if !self.comma_or(b']')? {
                return Some(());
            }
        }
    }

    fn inputs(&mut self) -> Option<Vec<FastInput>> {
        let mut out = Vec::new();
        self.list(|p| {
            out.push(p.input()?);
            Some(())
        })?;
        Some(out)
    }

    fn input(&mut self) -> Option<FastInput> {
        self.expect(b'{')?;
        let (mut name, mut shape, mut datatype, mut data) = (None, None, None, None);
        loop {
            match self.string()? {
                "name" if name.is_none() => {
                    self.expect(b':')?;
                    name = Some(self.string()?.to_owned());
                }
                "datatype" if datatype.is_none() => {
                    self.expect(b':')?;
                    datatype = Some(self.string()?.to_owned());
                }
                "shape" if shape.is_none() => {
                    self.expect(b':')?;
                    shape = Some(self.shape()?);
                }
                "data" if data.is_none() => {
                    self.expect(b':')?;
                    // One allocation of the right size when `shape` came first (as clients
                    // write it) and the rest of the body can hold that many numbers (2 bytes
                    // each at least): no doubling series of copies, each writing fresh pages.
                    let room = (self.b.len() - self.i) / 2 + 1;
                    let want = shape.as_deref().and_then(|d: &[i64]| {
                        d.iter().try_fold(1usize, |a, &x| a.checked_mul(usize::try_from(x).ok()?))
                    });
                    let cap = want.filter(|&n| n <= room).unwrap_or(0);
                    let mut t = FlatData { values: Vec::with_capacity(cap), all_u8: true, first_non_finite: None };
                    self.flatten(&mut t, 0)?;
                    data = Some(t);
                }
                _ => return None,
            }
            if !self.comma_or(b'}')? {
                break;
            }
        }
        Some(FastInput { name: name?, shape: shape?, datatype: datatype?, data })
    }

    /// A bare tensor (a number or nested arrays; an object of named tensors goes to serde).
    fn tensor(&mut self) -> Option<FlatData> {
        let mut t = FlatData { values: Vec::new(), all_u8: true, first_non_finite: None };
        self.flatten(&mut t, 0)?;
        Some(t)
    }

    /// `[d, ...]` of non-negative integers that fit an i64 (others: serde).
    fn shape(&mut self) -> Option<Vec<i64>> {
        let mut out = Vec::new();
        self.list(|p| {
            p.skip_ws();
            let n = p.number_parts()?;
            if n.negative || n.float {
                return None;
            }
            out.push(i64::try_from(n.significand).ok()?);
            Some(())
        })?;
        Some(out)
    }

    /// A number or a nested array of numbers, appended in order (the serde path's `Flatten`).
    fn flatten(&mut self, t: &mut FlatData, depth: u32) -> Option<()> {
        if self.peek()? != b'[' {
            let v = self.number()?;
            t.push(v);
            return Some(());
        }
        if depth >= MAX_DATA_DEPTH {
            return None;
        }
        self.list(|p| {
            // The flat case (every element a number) without the recursion.
            if p.peek()? != b'[' {
                let v = p.number()?;
                t.push(v);
                Some(())
            } else {
                p.flatten(t, depth + 1)
            }
        })
    }

    /// The f64 serde_json makes of the number here (see the module note), or `None`.
    fn number(&mut self) -> Option<f64> {
        let n = self.number_parts()?;
        let f = if !n.float {
            // An integer: serde's u64, i64 or (for `-0`) f64, each pushed `as f64`.
            n.significand as f64
        } else {
            let pow = *POW10.get(n.exponent.unsigned_abs() as usize)?;
            let f = n.significand as f64;
            if n.exponent >= 0 {
                let f = f * pow;
                // serde refuses an infinite result ("number out of range").
                if f.is_infinite() {
                    return None;
                }
                f
            } else {
                f / pow
            }
        };
        Some(if n.negative { -f } else { f })
    }

    /// The grammar serde_json accepts, `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, as a
    /// significand and a decimal exponent; `None` where serde would fail or take its slow path
    /// (a significand past u64, an exponent that overflows).
    fn number_parts(&mut self) -> Option<Number> {
        let b = self.b;
        let mut i = self.i;
        let negative = b.get(i) == Some(&b'-');
        if negative {
            i += 1;
        }
        let mut s: u64 = match *b.get(i)? {
            b'0' => {
                i += 1;
                // "01": serde's "invalid number".
                if b.get(i).is_some_and(u8::is_ascii_digit) {
                    return None;
                }
                0
            }
            c @ b'1'..=b'9' => {
                i += 1;
                u64::from(c - b'0')
            }
            _ => return None,
        };
        while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            s = push_digit(s, c)?;
            i += 1;
        }
        let mut exponent: i32 = 0;
        let mut float = false;
        if b.get(i) == Some(&b'.') {
            float = true;
            i += 1;
            let start = i;
            while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
                s = push_digit(s, c)?;
                exponent -= 1;
                i += 1;
            }
            if i == start {
                return None;
            }
        }
        if let Some(b'e' | b'E') = b.get(i) {
            float = true;
            i += 1;
            let positive = match b.get(i) {
                Some(b'+') => {
                    i += 1;
                    true
                }
                Some(b'-') => {
                    i += 1;
                    false
                }
                _ => true,
            };
            let start = i;
            let mut exp: i32 = 0;
            while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
                exp = exp.checked_mul(10)?.checked_add(i32::from(c - b'0'))?;
                i += 1;
            }
            if i == start {
                return None;
            }
            exponent = if positive { exponent.checked_add(exp)? } else { exponent.checked_sub(exp)? };
        }
        self.i = i;
        Some(Number { negative, significand: s, exponent, float })
    }
}

/// `s * 10 + digit`, or `None` past u64 (serde's slow path). The common case is one compare:
/// measured faster in wasm32 than `checked_mul` on every digit (bench/README.md, "Session 17";
/// why was not inspected).
#[inline(always)]
fn push_digit(s: u64, c: u8) -> Option<u64> {
    let d = u64::from(c - b'0');
    if s < u64::MAX / 10 {
        Some(s * 10 + d)
    } else {
        s.checked_mul(10)?.checked_add(d)
    }
}

struct Number {
    negative: bool,
    significand: u64,
    exponent: i32,
    /// Written with a `.` or an exponent (serde's f64 path), not as an integer.
    float: bool,
}
