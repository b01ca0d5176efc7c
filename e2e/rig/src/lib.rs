//! Network-namespace test rig. Stub: being written (issue 4).
