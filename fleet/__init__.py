"""The fleet: a tablet reports to the municipality's MQTT broker and takes signed card sets from it.

A process of its own (``klick fleet``), so the network never touches the resident's screen; it
talks to the launcher only through files (usage.db, cards.yaml, questionnaire.yaml). paho-mqtt is
imported here and nowhere else.
"""
