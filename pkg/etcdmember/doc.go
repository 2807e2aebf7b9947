// Package etcdmember manages this control-plane node's membership in the
// cluster's stacked etcd, the way `kubeadm join --control-plane` does it:
// Add the node as a learner, start its etcd with the --initial-cluster that
// Add returns and --initial-cluster-state=existing, then Promote it once it
// has caught up. `kubeboot reset` calls Remove.
//
// A learner does not vote, so a join that stops half-way never costs the
// cluster its quorum; it only holds etcd's learner slot (--max-learners
// defaults to 1). Add therefore repairs what an earlier, interrupted run
// left behind, and every call can be repeated:
//
//   - A member with this node's peer URL that never started (it has no
//     name yet) is reused, not added a second time.
//   - A started member with this node's peer URL and name is kept, unless
//     the local data directory is empty: its data is gone with the disk, and
//     an etcd that rejoins under an old identity with an empty log may vote
//     again in a term it already voted in, or vouch for entries it no longer
//     has. It is removed and the node added again as a new learner.
//   - A started member with this node's name but another peer URL is this
//     node before its address changed; it is removed. If it still answers at
//     its client URL, another machine runs under this name, and Add refuses.
//   - A learner that never started, with another peer URL, is an abandoned
//     join (typically this node's, from before its address changed): it
//     cannot hold data or vote, so removing it is always safe, and it would
//     block this join by holding the learner slot. The cost is that a second
//     node joining at the very same moment loses its learner and must retry;
//     control-plane nodes join one at a time.
//   - A started member with this node's peer URL but another name, while
//     this node has etcd data, is ambiguous; Add refuses rather than guess.
//
// Quorum. A membership change is a raft entry: it commits only when a
// majority of the current voters acknowledge it. Before changing anything,
// the package probes every voter (etcd's Status call at its advertised
// client URLs, and at the endpoints it was given) and counts those that
// answer as themselves. A voter is removed only when the reachable voters
// are a majority both before the removal (or it cannot commit) and after it
// (or the cluster is left unable to make progress). Learners never count.
// The consequence for two voters, one of them down: removing the dead one
// would leave "1 of 1", but the removal itself needs 2 of 2 to commit, which
// the dead voter cannot give, so etcd cannot do it; Add and Remove return
// ErrNoQuorum instead of waiting for a commit that never comes. Recovery
// then means bringing the dead member back with its data, or rebuilding the
// cluster from the survivor (etcdutl snapshot restore, or
// --force-new-cluster), which is an operator's decision, not a join's.
package etcdmember
