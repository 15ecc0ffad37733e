"""AR content (seed 001): companies' projects, image markers with video overlays, their
processing and publishing."""
