"""kbops.serve"""
