from django.forms.renderers import TemplatesSetting


class FormRenderer(TemplatesSetting):
    """Render every form with the site's templates: label, field, help, then errors beside it."""

    form_template_name = "forms/form.html"
    field_template_name = "forms/field.html"
