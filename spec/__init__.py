"""The attnspec specification: clause files (data) and prose. Imports nothing."""
