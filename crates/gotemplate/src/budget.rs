//! The one budget of a render: bytes produced, interpreter steps and wall-clock time.
//!
//! Templates are tenant input executed inside the controller, so only capping the final
//! output is not enough: `{{$x = cat $x $x}}` in a loop doubles a string 24 times long before
//! anything is written. Every string or list a function or a variable read produces is
//! charged here *before* it is allocated where its size can outgrow its inputs, and after it
//! is produced everywhere else; every node, command, function call and per-element step of a
//! list function is a step; the clock is read every few hundred steps. Exceeding any of them
//! is an ordinary template error, never an abort.
//!
//! A [`crate::Renderer`] renders all templates of one object under one budget: a limit per
//! template times many templates would be no limit (two hundred templates each writing the
//! 1 MiB a value may hold took a controller to half a gigabyte). The bytes written out by all
//! of them together are capped at [`Limits::max_output`], and the first template to overrun
//! stops the object.

use std::time::{Duration, Instant};

/// Output cap: a Secret cannot exceed 1 MiB, so neither can one rendered value, nor all the
/// values rendered for one Secret together.
pub(crate) const MAX_OUTPUT: usize = 1 << 20;

/// Deepest nesting of blocks and parentheses accepted, so hostile input cannot overflow the
/// stack of the recursive parser or evaluator.
pub(crate) const MAX_DEPTH: usize = 64;

/// Limits of one render, or of every render of one [`crate::Renderer`] together. Real
/// templates stay far below the defaults (a few kilobytes, a few hundred steps,
/// microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes of every value produced during the render (strings, lists, maps, each
    /// copy of a variable), not only the live ones: 16 MiB, sixteen times the largest Secret.
    pub max_bytes: usize,
    /// Interpreter steps: nodes, commands, function calls, range iterations and elements
    /// handled by list functions.
    pub max_steps: u64,
    /// Wall-clock time of the render, the backstop for any work the other two miss.
    pub max_time: Duration,
    /// Total bytes written out (the rendered text): 1 MiB, the size limit of a Secret, so
    /// whatever exceeds it could never be stored anyway.
    pub max_output: usize,
}

impl Limits {
    /// The limits of [`Limits::default`].
    pub const DEFAULT: Limits = Limits {
        max_bytes: 16 << 20,
        max_steps: 2_000_000,
        max_time: Duration::from_secs(1),
        max_output: MAX_OUTPUT,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Which limit a render exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exhausted {
    /// [`Limits::max_bytes`].
    Bytes,
    /// [`Limits::max_steps`].
    Steps,
    /// [`Limits::max_time`].
    Time,
    /// The rendered value, or all values rendered under one budget together, would exceed
    /// [`Limits::max_output`] (1 MiB by default: a Secret cannot be larger).
    Output,
}

impl Exhausted {
    /// A short name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Exhausted::Bytes => "bytes produced",
            Exhausted::Steps => "steps",
            Exhausted::Time => "time",
            Exhausted::Output => "output size",
        }
    }
}

/// Steps between two reads of the clock.
const CLOCK_EVERY: u64 = 256;

/// The running account of one render.
#[derive(Debug)]
pub(crate) struct Budget {
    limits: Limits,
    bytes: usize,
    /// Bytes written out so far, by every render sharing this budget.
    output: usize,
    steps: u64,
    since_clock: u64,
    deadline: Option<Instant>,
    /// The first limit hit. Function errors are plain messages; the executor asks here whether
    /// one was in fact a budget failure.
    exhausted: Option<Exhausted>,
}

impl Budget {
    pub(crate) fn new(limits: Limits) -> Budget {
        Budget {
            limits,
            bytes: 0,
            output: 0,
            steps: 0,
            since_clock: 0,
            deadline: Instant::now().checked_add(limits.max_time),
            exhausted: None,
        }
    }

    pub(crate) fn exhausted(&self) -> Option<Exhausted> {
        self.exhausted
    }

    fn fail(&mut self, what: Exhausted) -> Result<(), Exhausted> {
        self.exhausted.get_or_insert(what);
        Err(what)
    }

    /// Records the final output growing past its cap.
    pub(crate) fn output_exceeded(&mut self) -> Exhausted {
        let _ = self.fail(Exhausted::Output);
        Exhausted::Output
    }

    /// Charges `n` bytes about to be written out, refusing them (before they are copied) when
    /// they would take the output past [`Limits::max_output`].
    pub(crate) fn output(&mut self, n: usize) -> Result<(), Exhausted> {
        let total = self.output.saturating_add(n);
        if total > self.limits.max_output {
            return Err(self.output_exceeded());
        }
        self.output = total;
        Ok(())
    }

    /// Charges `n` bytes just produced (or about to be).
    pub(crate) fn bytes(&mut self, n: usize) -> Result<(), Exhausted> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > self.limits.max_bytes {
            return self.fail(Exhausted::Bytes);
        }
        Ok(())
    }

    /// Checks, without charging, that a value of `n` bytes may still be produced: called
    /// before allocating anything whose size is not bounded by already-charged inputs.
    pub(crate) fn ensure(&mut self, n: usize) -> Result<(), Exhausted> {
        if self.bytes.saturating_add(n) > self.limits.max_bytes {
            return self.fail(Exhausted::Bytes);
        }
        Ok(())
    }

    /// Charges `n` steps, and reads the clock every [`CLOCK_EVERY`] of them.
    pub(crate) fn steps(&mut self, n: u64) -> Result<(), Exhausted> {
        self.steps = self.steps.saturating_add(n);
        if self.steps > self.limits.max_steps {
            return self.fail(Exhausted::Steps);
        }
        self.since_clock = self.since_clock.saturating_add(n);
        if self.since_clock >= CLOCK_EVERY {
            self.since_clock = 0;
            if self.deadline.is_some_and(|d| Instant::now() > d) {
                return self.fail(Exhausted::Time);
            }
        }
        Ok(())
    }

    /// Bytes still available.
    pub(crate) fn remaining(&self) -> usize {
        self.limits.max_bytes.saturating_sub(self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_enforced_and_remembered() {
        let mut b = Budget::new(Limits {
            max_bytes: 10,
            max_steps: 3,
            max_time: Duration::from_secs(60),
            max_output: 10,
        });
        assert_eq!(b.bytes(6), Ok(()));
        assert_eq!(b.ensure(4), Ok(()));
        assert_eq!(b.remaining(), 4);
        assert_eq!(b.ensure(5), Err(Exhausted::Bytes));
        assert_eq!(b.steps(3), Ok(()));
        assert_eq!(b.steps(1), Err(Exhausted::Steps));
        // The first failure is the one reported.
        assert_eq!(b.exhausted(), Some(Exhausted::Bytes));
    }

    #[test]
    fn output_is_refused_before_it_is_counted() {
        let mut b = Budget::new(Limits {
            max_output: 10,
            ..Limits::DEFAULT
        });
        assert_eq!(b.output(6), Ok(()));
        assert_eq!(b.output(5), Err(Exhausted::Output));
        // The refused write was not counted: 4 bytes still fit.
        assert_eq!(b.output(4), Ok(()));
        assert_eq!(b.exhausted(), Some(Exhausted::Output));
    }

    #[test]
    fn deadline_is_checked() {
        let mut b = Budget::new(Limits {
            max_bytes: 10,
            max_steps: u64::MAX,
            max_time: Duration::ZERO,
            max_output: 10,
        });
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(b.steps(CLOCK_EVERY), Err(Exhausted::Time));
    }
}
