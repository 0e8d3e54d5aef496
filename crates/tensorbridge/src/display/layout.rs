//! NumPy's `_formatArray` (`numpy/_core/arrayprint.py`): nested brackets, rows
//! wrapped at the line width, blank lines between blocks of 3-d and higher arrays, and
//! `...` in place of the middle of summarised axes.

use super::{EDGE_ITEMS, LINE_WIDTH};

/// NumPy's `_formatArray` with separator `' '` and next-line prefix `' '`: nested
/// brackets, rows wrapped at [`LINE_WIDTH`], blank lines between blocks of 3-d and
/// higher arrays, and `...` in place of the middle of summarised axes.
pub(super) struct ArrayLayout<'a, F: Fn(usize) -> &'a str> {
    /// The array's shape (at least one axis).
    shape: &'a [usize],
    /// C-order element strides of each axis.
    strides: Vec<usize>,
    /// Whether axes longer than `2 * EDGE_ITEMS` are summarised.
    summarise: bool,
    /// The formatted element at a flat index.
    element: F,
}

impl<'a, F: Fn(usize) -> &'a str> ArrayLayout<'a, F> {
    /// A layout of an array of `shape` whose elements `element` formats.
    pub(super) fn new(shape: &'a [usize], summarise: bool, element: F) -> Self {
        let mut strides = vec![1usize; shape.len()];
        for axis in (0..shape.len().saturating_sub(1)).rev() {
            strides[axis] = strides[axis + 1] * shape[axis + 1];
        }
        ArrayLayout {
            shape,
            strides,
            summarise,
            element,
        }
    }

    /// The whole array's text.
    pub(super) fn render(&self) -> String {
        self.recurse(0, 0, 1, LINE_WIDTH)
    }

    /// The text of the sub-array at `axis` starting at flat index `offset`, whose
    /// continuation lines start with `hanging_indent` spaces and may use `width` columns
    /// (`recurser` in NumPy).
    fn recurse(&self, axis: usize, offset: usize, hanging_indent: usize, width: isize) -> String {
        if axis == self.shape.len() {
            return (self.element)(offset).to_string();
        }
        let len = self.shape[axis];
        let axes_left = self.shape.len() - axis;
        // Each nesting level adds a '[' on the left and a ']' on the right.
        let next_indent = hanging_indent + 1;
        let next_width = width - 1;
        // `None` stands for the '...' of a summarised axis.
        let items: Vec<Option<usize>> = if self.summarise && len > 2 * EDGE_ITEMS {
            (0..EDGE_ITEMS)
                .map(Some)
                .chain(std::iter::once(None))
                .chain((len - EDGE_ITEMS..len).map(Some))
                .collect()
        } else {
            (0..len).map(Some).collect()
        };
        let word = |item: &Option<usize>| match item {
            Some(i) => self.recurse(
                axis + 1,
                offset + i * self.strides[axis],
                next_indent,
                next_width,
            ),
            None => "...".to_string(),
        };
        let indent = " ".repeat(hanging_indent);
        let mut s = String::new();
        if axes_left == 1 {
            // A row: words separated by ' ', wrapped to leave room for the ']'.
            let elem_width = width - 1;
            let mut line = indent.clone();
            for (k, item) in items.iter().enumerate() {
                extend_line(&mut s, &mut line, &word(item), elem_width, &indent);
                if k + 1 < items.len() {
                    line.push(' ');
                }
            }
            s.push_str(&line);
        } else {
            // Sub-arrays one per line, with axes_left - 2 blank lines between them.
            let line_sep = "\n".repeat(axes_left - 1);
            for (k, item) in items.iter().enumerate() {
                s.push_str(&indent);
                s.push_str(&word(item));
                if k + 1 < items.len() {
                    s.push_str(&line_sep);
                }
            }
        }
        format!("[{}]", &s[hanging_indent..])
    }
}

/// NumPy's `_extendLine`: append `word` to `line`, first moving `line` into `s` and
/// starting a new line at `indent` if the word would pass `width` (unless the line holds
/// nothing but the indent, where wrapping would not help).
fn extend_line(s: &mut String, line: &mut String, word: &str, width: isize, indent: &str) {
    let needs_wrap = (line.len() + word.len()) as isize > width && line.len() > indent.len();
    if needs_wrap {
        s.push_str(line.trim_end_matches(' '));
        s.push('\n');
        line.clear();
        line.push_str(indent);
    }
    line.push_str(word);
}

#[cfg(test)]
mod tests {
    //! Expected texts are NumPy's `np.array2string(a, formatter={'int': f},
    //! separator=' ')` with a formatter `f` that returns the same words.

    use super::ArrayLayout;

    /// The layout of `shape` whose element at flat index `i` is `words(i)`.
    fn render(shape: &[usize], summarise: bool, words: impl Fn(usize) -> String) -> String {
        let size: usize = shape.iter().product();
        let words: Vec<String> = (0..size).map(words).collect();
        ArrayLayout::new(shape, summarise, |i| words[i].as_str()).render()
    }

    #[test]
    fn nested_rows() {
        let letters = |i: usize| "abcdef"[i..i + 1].to_string();
        assert_eq!(render(&[2, 3], false, letters), "[[a b c]\n [d e f]]");
    }

    #[test]
    fn blank_line_between_blocks() {
        assert_eq!(
            render(&[2, 1, 2], false, |i| i.to_string()),
            "[[[0 1]]\n\n [[2 3]]]"
        );
    }

    #[test]
    fn rows_wrap_before_75_columns() {
        assert_eq!(
            render(&[12], false, |_| "w".repeat(9)),
            format!(
                "[{}\n {}]",
                vec!["w".repeat(9); 7].join(" "),
                vec!["w".repeat(9); 5].join(" ")
            )
        );
    }

    #[test]
    fn words_wider_than_a_line_get_a_line_each() {
        let word = "w".repeat(80);
        assert_eq!(
            render(&[3], false, |_| word.clone()),
            format!("[{word}\n {word}\n {word}]")
        );
    }

    #[test]
    fn summarised_axes() {
        assert_eq!(render(&[10], true, |i| i.to_string()), "[0 1 2 ... 7 8 9]");
        assert_eq!(
            render(&[8, 2], true, |i| i.to_string()),
            "[[0 1]\n [2 3]\n [4 5]\n ...\n [10 11]\n [12 13]\n [14 15]]"
        );
    }
}
