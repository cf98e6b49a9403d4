"""stub"""
SCHEDULE_CASES: dict = {}
