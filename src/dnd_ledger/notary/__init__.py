"""Tamper-evidence primitives: RFC 6962 Merkle trees and C2SP signed-note checkpoints."""
