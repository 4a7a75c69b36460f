//! Field selectors (`fieldSelector=spec.nodeName=node-1,status.phase!=Failed`):
//! the few fields each kind lets lists and watches filter on.
