"""Orchestration: commands that run other commands, above every stage.

`chain` runs a recipe's stages in order (`dlcot run`), `sweep` runs a recipe over a grid (`dlcot sweep`), `report`
and `report_factors` make one table of many runs (`dlcot report`). They reach the stages only through the command
table (`dlcot.commands`), so a stage never imports them and they never import a stage.
"""
