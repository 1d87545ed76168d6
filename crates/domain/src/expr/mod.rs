//! `${{ … }}` expressions and `${NAME}` templates (being written).
