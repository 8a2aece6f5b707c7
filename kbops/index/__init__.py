"""kbops.index"""
