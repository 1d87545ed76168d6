//! Cycle detection with the cycle's path, over small dependency graphs (petgraph).

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

/// Finds every cycle group in a graph of `node_count` nodes with edges `dependency → dependent`
/// and returns one concrete cycle path per group, as node indices, first node repeated at the end
/// (`[a, b, c, a]`). Groups are reported in ascending order of their smallest node.
pub(crate) fn find_cycles(node_count: usize, edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
    let mut graph = DiGraph::<usize, ()>::with_capacity(node_count, edges.len());
    let nodes: Vec<NodeIndex> = (0..node_count).map(|index| graph.add_node(index)).collect();
    for &(from, to) in edges {
        graph.add_edge(nodes[from], nodes[to], ());
    }
    let mut cycles: Vec<Vec<usize>> = tarjan_scc(&graph)
        .into_iter()
        .filter_map(|component| {
            let members: Vec<usize> = component.iter().map(|node| node.index()).collect();
            let is_self_loop = members.len() == 1 && edges.contains(&(members[0], members[0]));
            if members.len() > 1 || is_self_loop {
                Some(cycle_path(&members, edges))
            } else {
                None
            }
        })
        .collect();
    cycles.sort_by_key(|path| path.first().copied());
    cycles
}

/// A cycle through the smallest member of a strongly connected component, found by DFS
/// restricted to the component (every member of an SCC lies on a cycle through the others).
fn cycle_path(members: &[usize], edges: &[(usize, usize)]) -> Vec<usize> {
    let start = members
        .iter()
        .copied()
        .min()
        .expect("a component has at least one member");
    let mut path = vec![start];
    let mut visited = vec![start];
    if dfs(start, start, members, edges, &mut path, &mut visited) {
        path.push(start);
    }
    path
}

fn dfs(
    node: usize,
    start: usize,
    members: &[usize],
    edges: &[(usize, usize)],
    path: &mut Vec<usize>,
    visited: &mut Vec<usize>,
) -> bool {
    let mut successors: Vec<usize> = edges
        .iter()
        .filter(|(from, to)| *from == node && members.contains(to))
        .map(|(_, to)| *to)
        .collect();
    successors.sort_unstable();
    for next in successors {
        if next == start {
            return true;
        }
        if visited.contains(&next) {
            continue;
        }
        visited.push(next);
        path.push(next);
        if dfs(next, start, members, edges, path, visited) {
            return true;
        }
        path.pop();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acyclic_graphs_have_no_cycles() {
        assert!(find_cycles(3, &[(0, 1), (1, 2), (0, 2)]).is_empty());
    }

    #[test]
    fn a_cycle_is_reported_as_a_closed_path() {
        assert_eq!(
            find_cycles(4, &[(0, 1), (1, 2), (2, 3), (3, 1)]),
            vec![vec![1, 2, 3, 1]]
        );
    }

    #[test]
    fn self_loops_and_separate_cycles_are_each_reported() {
        assert_eq!(
            find_cycles(4, &[(0, 0), (2, 3), (3, 2)]),
            vec![vec![0, 0], vec![2, 3, 2]]
        );
    }
}
