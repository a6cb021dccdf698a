"""synthetic: S+R networks and Monte Carlo checks of the probabilistic and asymptotic results.

App built on certkit (issue 3). ``synthetic.registry`` lists experiments; ``synthetic.runner``
runs them into a resumable SQLite store; ``synthetic.networks`` generates S+R layers,
networks and data sets.
"""
