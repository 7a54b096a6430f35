//! A Kubernetes list's JSON, as it arrives in chunks, split into the bytes of each item and
//! the list without its items (for `metadata.continue`).
//!
//! Why: the controller's start-up check lists SealedSecrets in pages of 2,000 (a page costs
//! the API server a fixed 15-20 ms, so pages are large). Decoding from a reader is about four
//! times slower than from memory, and holding a page in memory to decode it was the largest
//! part of a restart's peak at 10,000 objects (7 MB of 53 MiB). Split, each item is decoded
//! from its own bytes while the rest of the page is still arriving: memory holds one item.
//!
//! Only the structure is tracked here (strings, their escapes and nesting, not which kind of
//! bracket closes); each item and the rest are then decoded by serde_json, which checks them.
//! Bytes that are not a list of objects give an error, here or when decoded, never a panic.

/// What is wrong with a list body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListSplitError {
    /// An element of `items` that is not a JSON object.
    #[error("`items` element {index} of the list is not an object (at byte {offset})")]
    NotAnObject { index: u64, offset: u64 },
    /// One item above the caller's limit.
    #[error("`items` element {index} of the list is above {limit} bytes")]
    TooLarge { index: u64, limit: usize },
    /// More closing brackets than opening ones.
    #[error("unbalanced brackets at byte {offset} of the list")]
    Unbalanced { offset: u64 },
    /// The list outside `items` above the caller's limit.
    #[error("the list outside `items` is above {limit} bytes")]
    RestTooLarge { limit: usize },
    /// The body ended inside a string, an item or the list.
    #[error("the list ended early (after {offset} bytes)")]
    Truncated { offset: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Outside `items`: bytes go to the rest.
    Rest,
    /// Inside the `items` array, between elements.
    Between,
    /// Inside an element (an object) of `items`: bytes go to the item.
    Item,
}

/// Splits a list body fed in chunks ([`ListSplitter::feed`]); see the module doc.
#[derive(Debug)]
pub struct ListSplitter {
    mode: Mode,
    /// Open objects and arrays.
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// Bytes fed so far (for error offsets).
    offset: u64,
    /// Items emitted so far.
    items: u64,
    rest: Vec<u8>,
    item: Vec<u8>,
    max_item: usize,
}

impl ListSplitter {
    /// `max_item`: bytes an item may have (more is [`ListSplitError::TooLarge`]), and the
    /// list outside its items ([`ListSplitError::RestTooLarge`]).
    pub fn new(max_item: usize) -> Self {
        Self {
            mode: Mode::Rest,
            depth: 0,
            in_string: false,
            escaped: false,
            offset: 0,
            items: 0,
            rest: Vec::new(),
            item: Vec::new(),
            max_item,
        }
    }

    /// Feeds the next chunk of the body; `on_item` gets the bytes of each item completed in
    /// it, in order. An error of `on_item` stops the split and is returned as is.
    pub fn feed<E>(
        &mut self,
        chunk: &[u8],
        mut on_item: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), FeedError<E>> {
        // Start of the current run of bytes going to the item or the rest.
        let mut run = 0;
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                i += 1;
                continue;
            }
            match self.mode {
                Mode::Rest => match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => {
                        if b == b'[' && self.depth == 1 && self.opens_items(&chunk[run..i]) {
                            self.keep(&chunk[run..=i])?;
                            run = i + 1;
                            self.mode = Mode::Between;
                        }
                        self.depth = self.depth.saturating_add(1);
                    }
                    b'}' | b']' => self.close(i)?,
                    _ => {}
                },
                Mode::Between => match b {
                    b' ' | b'\t' | b'\r' | b'\n' | b',' => run = i + 1,
                    b'{' => {
                        self.depth = self.depth.saturating_add(1);
                        self.mode = Mode::Item;
                        self.item.clear();
                        run = i;
                    }
                    b']' => {
                        self.close(i)?;
                        self.mode = Mode::Rest;
                        run = i;
                    }
                    _ => {
                        return Err(FeedError::List(ListSplitError::NotAnObject {
                            index: self.items,
                            offset: self.offset + i as u64,
                        }));
                    }
                },
                Mode::Item => match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth = self.depth.saturating_add(1),
                    b'}' | b']' => {
                        self.close(i)?;
                        if self.depth == 2 {
                            self.take_item(&chunk[run..=i])?;
                            on_item(&self.item).map_err(FeedError::Item)?;
                            self.items += 1;
                            self.mode = Mode::Between;
                            run = i + 1;
                        }
                    }
                    _ => {}
                },
            }
            i += 1;
        }
        match self.mode {
            Mode::Rest => self.keep(&chunk[run..])?,
            Mode::Item => self.take_item(&chunk[run..])?,
            Mode::Between => {}
        }
        self.offset += chunk.len() as u64;
        Ok(())
    }

    /// Ends the body: the list without its items (`"items":[]`), for its `metadata`.
    pub fn finish(self) -> Result<Vec<u8>, ListSplitError> {
        if self.depth != 0 || self.in_string || self.mode != Mode::Rest {
            return Err(ListSplitError::Truncated {
                offset: self.offset,
            });
        }
        Ok(self.rest)
    }

    /// Items completed so far.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// Whether a `[` at depth 1 opens the value of the key `items`: the rest so far, with
    /// `pending` (this chunk's bytes before the `[`) after it, ends in `"items"` and a colon,
    /// the key preceded by `{` or `,`.
    fn opens_items(&self, pending: &[u8]) -> bool {
        let mut tail = Tail {
            a: &self.rest,
            b: pending,
        };
        tail.skip_space();
        if tail.pop() != Some(b':') {
            return false;
        }
        tail.skip_space();
        for &want in b"\"items\"".iter().rev() {
            if tail.pop() != Some(want) {
                return false;
            }
        }
        tail.skip_space();
        matches!(tail.pop(), Some(b'{' | b','))
    }

    fn close(&mut self, i: usize) -> Result<(), ListSplitError> {
        match self.depth.checked_sub(1) {
            Some(d) => {
                self.depth = d;
                Ok(())
            }
            None => Err(ListSplitError::Unbalanced {
                offset: self.offset + i as u64,
            }),
        }
    }

    fn keep(&mut self, bytes: &[u8]) -> Result<(), ListSplitError> {
        if self.rest.len() + bytes.len() > self.max_item {
            return Err(ListSplitError::RestTooLarge {
                limit: self.max_item,
            });
        }
        self.rest.extend_from_slice(bytes);
        Ok(())
    }

    fn take_item(&mut self, bytes: &[u8]) -> Result<(), ListSplitError> {
        if self.item.len() + bytes.len() > self.max_item {
            return Err(ListSplitError::TooLarge {
                index: self.items,
                limit: self.max_item,
            });
        }
        self.item.extend_from_slice(bytes);
        Ok(())
    }
}

/// An error of [`ListSplitter::feed`]: the body's or the caller's.
#[derive(Debug)]
pub enum FeedError<E> {
    List(ListSplitError),
    Item(E),
}

impl<E> From<ListSplitError> for FeedError<E> {
    fn from(e: ListSplitError) -> Self {
        Self::List(e)
    }
}

/// The end of two byte strings, `a` then `b`, read backwards.
struct Tail<'a> {
    a: &'a [u8],
    b: &'a [u8],
}

impl Tail<'_> {
    fn pop(&mut self) -> Option<u8> {
        if let Some((&last, rest)) = self.b.split_last() {
            self.b = rest;
            return Some(last);
        }
        let (&last, rest) = self.a.split_last()?;
        self.a = rest;
        Some(last)
    }

    fn skip_space(&mut self) {
        loop {
            let last = self.b.last().or_else(|| self.a.last());
            match last {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.pop();
                }
                _ => return,
            }
        }
    }
}

#[cfg(test)]
#[path = "list_items_tests.rs"]
mod tests;
