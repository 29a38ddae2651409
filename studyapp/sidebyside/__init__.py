"""Side-by-side turns: two candidate replies shown at once, the participant picks one.

Each pick is a real preference pair for the DPO export (studyapp.exports.datasets).
"""
