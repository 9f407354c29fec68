"""``marketfeed bench soak``: the whole stack for a long time, and whether it stayed flat."""
