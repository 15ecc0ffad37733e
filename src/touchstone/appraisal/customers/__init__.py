"""Borrowers: created, searched and photographed by appraisers, their numbers sealed."""
