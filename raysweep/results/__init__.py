"""What a sweep's results look like to a person: the results table and the HTML report.

Reads the run log and the spec, writes nothing but the report file.
"""
