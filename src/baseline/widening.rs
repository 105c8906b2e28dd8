//! Widening the alpha grid past an edge: when the best alpha is the strongest or the weakest
//! tried, the optimum may lie beyond the grid (the one-vs-rest baseline chose C = 0.01, the
//! grid's edge, on a mosaic set where scikit-learn's best was 0.0032), so the grid is extended
//! on that side by its own outermost step until an alpha past the edge is no longer the best,
//! or [`BaselineParams::widen`](super::BaselineParams::widen) steps were taken on that side.

/// A side of the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Edge {
    /// The largest alpha (smallest `C`).
    Strong,
    /// The smallest alpha (largest `C`).
    Weak,
}

/// The alpha to try next when `best` is at an edge of `alphas` (sorted strongest first, at
/// least two), with the edge it extends; `None` when `best` lies inside the grid or `steps`
/// (taken so far on `[Strong, Weak]`) has reached `limit` on that side.
pub(super) fn beyond_edge(alphas: &[f64], best: f64, steps: [usize; 2], limit: usize) -> Option<(f64, Edge)> {
    let n = alphas.len();
    if n < 2 {
        return None;
    }
    let (alpha, edge) = if best == alphas[0] {
        (alphas[0] * (alphas[0] / alphas[1]), Edge::Strong)
    } else if best == alphas[n - 1] {
        (alphas[n - 1] / (alphas[n - 2] / alphas[n - 1]), Edge::Weak)
    } else {
        return None;
    };
    (steps[edge as usize] < limit && alpha.is_finite() && alpha > 0.0).then_some((alpha, edge))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edge_is_extended_by_its_own_step_and_the_inside_is_not() {
        let alphas = [100.0, 10.0, 1.0, 0.5];
        assert_eq!(beyond_edge(&alphas, 100.0, [0, 0], 3), Some((1000.0, Edge::Strong)));
        assert_eq!(beyond_edge(&alphas, 0.5, [0, 0], 3), Some((0.25, Edge::Weak)));
        assert_eq!(beyond_edge(&alphas, 10.0, [0, 0], 3), None);
        assert_eq!(beyond_edge(&alphas, 1.0, [0, 0], 3), None);
    }

    #[test]
    fn each_side_stops_at_its_limit() {
        let alphas = [100.0, 10.0, 1.0];
        assert_eq!(beyond_edge(&alphas, 100.0, [3, 0], 3), None);
        assert_eq!(beyond_edge(&alphas, 1.0, [3, 0], 3), Some((0.1, Edge::Weak)));
        assert_eq!(beyond_edge(&alphas, 1.0, [0, 3], 3), None);
        assert_eq!(beyond_edge(&alphas, 1.0, [0, 0], 0), None);
    }

    #[test]
    fn a_single_alpha_is_never_widened() {
        assert_eq!(beyond_edge(&[1.0], 1.0, [0, 0], 3), None);
    }
}
