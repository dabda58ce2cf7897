"""Workshop mode: a room of students, a lab each, guided exercises with live checks, a trainer's dashboard.

room.py       who the students are, their labs, logins and the time limit (room.json)
labs.py       the students' labs: up side by side, down, reset one
firewall.py   what keeps a student's lab away from the machine and from the other labs
gateway.py    each student's SSH port on the machine, leading to host A of their lab
actions.py    what a student may ask of their lab (the `lab` command), done for them
checks.py     each exercise's automatic check (testinfra), and the room's status
service.py    the workshop service: the students' API, the gateway, the dashboard
handout.py    one page per student: address, port, password, first command
cli.py        `badsum workshop up|down|reset|status|serve|check|handout`
student_lab.py  the `lab` command itself, installed in each student's home
"""
