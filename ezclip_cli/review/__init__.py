"""Looking at a tagging run: a self-contained HTML report (`ezclip report`, `tag --report`) and exports
for the review tools people already use, FiftyOne and Label Studio (`ezclip convert`).

Everything here reads `ezclip tag` outputs (any format; windows and segments too) and writes files;
nothing needs torch. Thumbnails are decoded with tag's own readers (video/), at the frames the model saw.
"""
