"""Municipal pilots: the real municipalities (data file, names, groupings) and, later, designs and power."""
