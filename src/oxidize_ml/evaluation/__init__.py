"""Evaluations behind every claim: congestion (Pantheon), loss/FEC, paths, compression.

Modules import optional dependencies (matplotlib, gymnasium, torch) inside the
functions that need them.
"""
