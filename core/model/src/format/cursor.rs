//! A bounds-checked little-endian cursor over one section of untrusted bytes.
//!
//! Every read names what it was reading; a failure becomes a `BadModel` error that says which
//! section, which field and at which file offset. Nothing here can panic or allocate more than
//! the bytes it was given.

use std::fmt::Display;

use crate::error::{Error, Result};
use crate::format::codes::MAX_STRING_BYTES;

pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// File offset of `buf[0]`, for messages.
    base: usize,
    section: &'static str,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8], base: usize, section: &'static str) -> Self {
        Cursor {
            buf,
            pos: 0,
            base,
            section,
        }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// File offset of the next byte.
    pub fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    /// A `BadModel` error located at the cursor.
    pub fn err(&self, msg: impl Display) -> Error {
        Error::bad_model(format!(
            "{} section, file offset {}: {msg}",
            self.section,
            self.offset()
        ))
    }

    pub fn take(&mut self, n: usize, what: impl Display) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(format_args!(
                "truncated: {what} needs {n} bytes but only {} remain in the section",
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: impl Display) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub fn u8(&mut self, what: impl Display) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    pub fn u16(&mut self, what: impl Display) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub fn u32(&mut self, what: impl Display) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub fn i32(&mut self, what: impl Display) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }
    pub fn u64(&mut self, what: impl Display) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub fn f32(&mut self, what: impl Display) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }

    /// A finite f32 (NaN or infinity in metadata or attributes is always an error).
    pub fn finite_f32(&mut self, what: impl Display) -> Result<f32> {
        let at = self.offset();
        let v = self.f32(&what)?;
        if !v.is_finite() {
            return Err(Error::bad_model(format!(
                "{} section, file offset {at}: {what} is {v}, must be finite",
                self.section
            )));
        }
        Ok(v)
    }

    /// A u32 used as a dimension or attribute.
    pub fn usize32(&mut self, what: impl Display) -> Result<usize> {
        let v = self.u32(&what)?;
        usize::try_from(v)
            .map_err(|_| self.err(format_args!("{what} {v} does not fit this platform")))
    }

    /// A u32 element count, checked against `max` and against the bytes left: each item takes at
    /// least `min_item_bytes`, so a count the section cannot hold is rejected before anything is
    /// allocated for it.
    pub fn count(
        &mut self,
        what: impl Display,
        max: usize,
        min_item_bytes: usize,
    ) -> Result<usize> {
        let at = self.offset();
        let n = self.u32(&what)? as usize; // u32 fits usize on every supported target (>= 32-bit)
        if n > max {
            return Err(Error::bad_model(format!(
                "{} section, file offset {at}: {what} is {n}, more than the limit of {max}",
                self.section
            )));
        }
        let need = n.checked_mul(min_item_bytes);
        if need.is_none_or(|need| need > self.remaining()) {
            return Err(Error::bad_model(format!(
                "{} section, file offset {at}: {what} is {n}, but only {} bytes remain (needs at least {min_item_bytes} each): truncated or corrupt",
                self.section,
                self.remaining()
            )));
        }
        Ok(n)
    }

    /// A string: u32 byte length (at most [`MAX_STRING_BYTES`]) then UTF-8 bytes.
    pub fn string(&mut self, what: impl Display) -> Result<String> {
        let at = self.offset();
        let n = self.u32(format_args!("{what} length"))? as usize;
        if n > MAX_STRING_BYTES {
            return Err(Error::bad_model(format!(
                "{} section, file offset {at}: {what} is {n} bytes long, more than the limit of {MAX_STRING_BYTES}",
                self.section
            )));
        }
        let bytes = self.take(n, &what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(Error::bad_model(format!(
                "{} section, file offset {at}: {what} is not valid UTF-8 ({e})",
                self.section
            ))),
        }
    }

    /// Ends the section: trailing bytes are an error unless `allow_trailing` (a newer minor
    /// version may append fields a reader does not know).
    pub fn finish(&self, allow_trailing: bool) -> Result<()> {
        if self.remaining() != 0 && !allow_trailing {
            return Err(self.err(format_args!(
                "{} unexpected bytes after the last field",
                self.remaining()
            )));
        }
        Ok(())
    }
}
