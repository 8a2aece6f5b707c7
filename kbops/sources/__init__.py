"""kbops.sources"""
