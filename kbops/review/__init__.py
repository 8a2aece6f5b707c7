"""kbops.review"""
