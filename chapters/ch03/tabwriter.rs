//! Column alignment as Go's `text/tabwriter` does it, which is how kubectl
//! lines up `get` and `describe`: cells end at a tab, a column's width is
//! its widest cell plus the padding, and a column lasts only as long as
//! consecutive lines have a cell in it (so a line without tabs starts a new
//! block of widths). The text after a line's last tab is never padded.

/// Aligns `text`: every cell at least `min_width` wide, `padding` spaces
/// after its widest.
pub fn align(text: &str, min_width: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> =
        text.lines().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<Vec<usize>> =
        lines.iter().map(|_| Vec::new()).collect();
    format(&lines, &mut widths, 0, 0, lines.len(), min_width, padding);
    let mut out = String::new();
    for (cells, widths) in lines.iter().zip(&widths) {
        let last = cells.len() - 1;
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        // Go's tabwriter keeps what the cells end with; kubectl's cells
        // never end in spaces, so trimming changes nothing but stray ones.
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    }
    out
}

/// Go's `Writer.format`: the widths of column `col` for lines
/// `start..end`, block by block, and recursively of the columns after it.
fn format(
    lines: &[Vec<&str>],
    widths: &mut [Vec<usize>],
    col: usize,
    start: usize,
    end: usize,
    min_width: usize,
    padding: usize,
) {
    let mut i = start;
    while i < end {
        // A cell in column `col` is one followed by a tab.
        if lines[i].len() - 1 <= col {
            i += 1;
            continue;
        }
        let block = i;
        let mut width = min_width;
        while i < end && lines[i].len() - 1 > col {
            width = width.max(lines[i][col].chars().count() + padding);
            i += 1;
        }
        for w in &mut widths[block..i] {
            w.push(width);
        }
        format(lines, widths, col + 1, block, i, min_width, padding);
    }
}

#[cfg(test)]
mod tests {
    use super::align;

    #[test]
    fn columns_take_the_widest_cell_plus_padding() {
        let text = "NAME\tREADY\tAGE\nkubia-manual\t1/1\t5s\n";
        assert_eq!(
            align(text, 6, 3),
            "NAME           READY   AGE\nkubia-manual   1/1     5s\n"
        );
    }

    #[test]
    fn a_line_without_tabs_ends_a_block() {
        let text = "Name:\tkubia\nIP:\t1.2.3.4\nIPs:\n  IP:\t1.2.3.4\n";
        assert_eq!(
            align(text, 0, 2),
            "Name:  kubia\nIP:    1.2.3.4\nIPs:\n  IP:  1.2.3.4\n"
        );
    }
}
