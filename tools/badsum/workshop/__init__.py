"""Workshop mode: a room of students, a lab each, guided exercises with live checks, a trainer's dashboard.

room.py       who the students are, their labs, logins and the time limit (room.json)
limits.py     what each seat's lab may use (tasks, memory, CPU weight): defaults from the machine
labs.py       the students' labs: up side by side, down, reset one
firewall.py   what keeps a student's lab away from the machine and from the other labs
gateway.py    each student's SSH port on the machine, leading to host A of their lab; who holds a session
web.py        the web port: the dashboard (from the machine), each student's seat in a browser
actions.py    what a student may ask of their lab (the `lab` command), done for them
runs.py       the room's runs: every waiting cell in one playbook run, shared fairly
checks.py     each exercise's automatic check (testinfra), and the room's status
service.py    the workshop service: the students' API (bounded), the gateway, the web
handout.py    one page per student: address, port, password, first command
cli.py        `badsum workshop up|down|reset|status|serve|check|handout`
student_lab.py  the `lab` command itself, installed in each student's home
"""
