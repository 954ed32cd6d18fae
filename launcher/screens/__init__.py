"""The launcher's screens: one message at a time, big, calm, drawn with Kivy.

Each screen is built once and then updated, so a card's face is on the glass in the first
frame after its event instead of after a widget tree is built.
"""
