"""employment history: role, team and row changes with effective dates

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('employment_history',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('employee_id', sa.String(length=64), nullable=False),
    sa.Column('effective_on', sa.Date(), nullable=False),
    sa.Column('change', sa.String(length=16), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('team_id', sa.String(length=64), nullable=True),
    sa.Column('row_id', sa.String(length=64), nullable=True),
    sa.Column('team_lead_id', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['employee_id'], ['employees.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('employment_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_employment_history_employee_id'), ['employee_id'], unique=False)
    # Employees hired before this revision get their hire as the first record (their current role and team:
    # earlier changes were not recorded), and their leaving if they left.
    op.execute("""
        INSERT INTO employment_history (employee_id, effective_on, change, role, team_id, row_id, team_lead_id,
                                        reason, recorded_at, recorded_by)
        SELECT e.id, e.hired_on, 'hired', e.role, e.team_id, e.row_id, t.lead_id, NULL, CURRENT_TIMESTAMP,
               'migration 0002'
        FROM employees AS e LEFT JOIN teams AS t ON t.id = e.team_id
    """)
    op.execute("""
        INSERT INTO employment_history (employee_id, effective_on, change, role, team_id, row_id, team_lead_id,
                                        reason, recorded_at, recorded_by)
        SELECT id, left_on, 'left', role, team_id, row_id, exit_team_lead_id, exit_reason, CURRENT_TIMESTAMP,
               'migration 0002'
        FROM employees WHERE left_on IS NOT NULL
    """)


def downgrade() -> None:
    with op.batch_alter_table('employment_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_employment_history_employee_id'))
    op.drop_table('employment_history')
