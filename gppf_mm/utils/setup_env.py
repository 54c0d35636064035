# Copyright (c) gppf_mm contributors. All rights reserved.
"""Register every gppf_mm module.

:func:`register_all_modules` imports every subpackage, so it sits at the
top of the package's import graph although it lives in ``utils`` (where
OpenMMLab packages keep it): no module that it imports imports this one
(``tests/test_house/test_import_graph.py`` checks the whole graph)."""
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every gppf_mm module so that they register themselves.

    Args:
        init_default_scope (bool): set the default scope to ``'gppf_mm'``
            (creating a uniquely named ``DefaultScope`` instance if another
            scope is current, as the OpenMMLab packages do).
    """
    import gppf_mm.datasets  # noqa: F401,F403
    import gppf_mm.engine  # noqa: F401,F403
    import gppf_mm.evaluation  # noqa: F401,F403
    import gppf_mm.models  # noqa: F401,F403

    if init_default_scope:
        never_created = (DefaultScope.get_current_instance() is None
                         or not DefaultScope.check_instance_created('gppf_mm'))
        if never_created:
            DefaultScope.get_instance('gppf_mm', scope_name='gppf_mm')
            return
        current_scope = DefaultScope.get_current_instance()
        if current_scope.scope_name != 'gppf_mm':
            warnings.warn('The current default scope '
                          f'"{current_scope.scope_name}" is not "gppf_mm", '
                          '`register_all_modules` will force the current'
                          'default scope to be "gppf_mm". If this is not '
                          'expected, please set `init_default_scope=False`.')
            new_instance_name = f'gppf_mm-{datetime.datetime.now()}'
            DefaultScope.get_instance(new_instance_name, scope_name='gppf_mm')
